"""Benchmark of the segmentation engine (K-Means, k 2..8) against a plain scikit-learn loop.

    .venv/bin/python bench/segments.py [--sizes 100000,1000000] [--repeats 3] [--threads N]

Each measurement runs in a fresh subprocess, so its peak RSS (read by the child at its end with
getrusage(RUSAGE_SELF), which covers the data it generated as the service would hold it) is its own.
Wall and CPU time (user + system, all threads) cover the segmentation only, not the data generation;
CPU time shows the work when the cores are shared and wall time is inflated by waiting. The data:
seeded make_blobs, 5 centres in 8 features. Beside the engine, in the same run, the plain loop:
standardise, then for k = 2..8 a KMeans fit on all rows and silhouette_score on a 10,000-row sample.
Medians of `--repeats` runs.

Targets (issue 3): 1M rows <= 15 s and <= 2 GiB peak. Both children start from a plain environment
(bench/baseline.py: none of our OpenMP or thread variables, so the plain loop is scikit-learn as its
users run it); --threads gives both the same thread count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from baseline import plain_env

FEATURES = 8
CENTRES = 5
K_MIN, K_MAX = 2, 8
SILHOUETTE_SAMPLE = 10_000
SEED = 42
TARGET_SECONDS = 15.0
TARGET_BYTES = 2 * 2**30
SRC = Path(__file__).resolve().parents[1] / "src"


def _data(rows: int):  # type: ignore[no-untyped-def]
    from sklearn.datasets import make_blobs

    return make_blobs(
        n_samples=rows,
        n_features=FEATURES,
        centers=CENTRES,
        cluster_std=2.5,
        center_box=(-10.0, 10.0),
        random_state=SEED,
    )


def _engine(rows: int) -> dict[str, object]:
    import polars as pl
    from sklearn.metrics import adjusted_rand_score

    from adapters.frames import PolarsDataset
    from adapters.segmentation.segmenter import fit_segments
    from domain.segmentation import SegmentationSpec

    x, truth = _data(rows)
    dataset = PolarsDataset(pl.DataFrame({f"f{i}": x[:, i] for i in range(FEATURES)}))
    del x
    spec = SegmentationSpec(min_clusters=K_MIN, max_clusters=K_MAX, random_state=SEED)
    started, cpu = time.perf_counter(), time.process_time()
    labels, result = fit_segments(dataset, spec, lambda fraction, message="": None)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu": cpu,
        "k": result.k,
        "ari": float(adjusted_rand_score(truth, labels)),
    }


def _plain(rows: int) -> dict[str, object]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, silhouette_score
    from sklearn.preprocessing import StandardScaler

    x, truth = _data(rows)
    started, cpu = time.perf_counter(), time.process_time()
    scaled = StandardScaler().fit_transform(x)
    best: tuple[float, int, object] | None = None
    for k in range(K_MIN, K_MAX + 1):
        labels = KMeans(n_clusters=k, random_state=SEED).fit(scaled).labels_
        score = silhouette_score(scaled, labels, sample_size=min(SILHOUETTE_SAMPLE, rows), random_state=SEED)
        if best is None or score > best[0]:
            best = (score, k, labels)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert best is not None
    return {"seconds": seconds, "cpu": cpu, "k": best[1], "ari": float(adjusted_rand_score(truth, best[2]))}


def _child(mode: str, rows: int) -> None:
    outcome = _engine(rows) if mode == "engine" else _plain(rows)
    # ru_maxrss is in KiB on Linux.
    outcome["peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(outcome))


def _run(mode: str, rows: int, threads: int | None) -> dict[str, float]:
    env = plain_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--rows", str(rows)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="OMP/BLAS threads of the children")
    parser.add_argument("--child", choices=["engine", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.rows)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    threads = args.threads if args.threads is not None else os.environ.get("OMP_NUM_THREADS", "unset")
    print(
        f"k {K_MIN}..{K_MAX}, {FEATURES} features, {args.repeats} runs each, threads={threads}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    header = (
        f"{'rows':>9} | {'engine s':>8} {'plain s':>8} {'ratio':>6} | {'eng cpu':>7} {'plain cpu':>9} | "
        f"{'engine MiB':>10} {'plain MiB':>9} | "
        f"{'k eng/plain':>11} | {'ARI eng/plain':>13} | target"
    )
    print(header)
    print("-" * len(header))
    for rows in sizes:
        runs: dict[str, list[dict[str, float]]] = {"engine": [], "plain": []}
        for _ in range(args.repeats):
            for mode in ("engine", "plain"):
                runs[mode].append(_run(mode, rows, args.threads))
        med = {
            mode: {
                key: statistics.median(r[key] for r in results)
                for key in ("seconds", "cpu", "peak_bytes", "ari")
            }
            for mode, results in runs.items()
        }
        ks = {mode: "/".join(sorted({str(int(r["k"])) for r in results})) for mode, results in runs.items()}
        engine, plain = med["engine"], med["plain"]
        ok = engine["seconds"] <= TARGET_SECONDS and engine["peak_bytes"] <= TARGET_BYTES
        print(
            f"{rows:>9} | {engine['seconds']:>8.2f} {plain['seconds']:>8.2f} "
            f"{plain['seconds'] / engine['seconds']:>5.1f}x | "
            f"{engine['cpu']:>7.2f} {plain['cpu']:>9.2f} | "
            f"{engine['peak_bytes'] / 2**20:>10.0f} {plain['peak_bytes'] / 2**20:>9.0f} | "
            f"{ks['engine'] + ' / ' + ks['plain']:>11} | {engine['ari']:>6.3f}/{plain['ari']:<6.3f} | "
            f"{'ok' if ok else 'MISSED'}"
        )
        print(
            "          engine runs s: "
            + ", ".join(f"{r['seconds']:.2f}" for r in runs["engine"])
            + " | plain runs s: "
            + ", ".join(f"{r['seconds']:.2f}" for r in runs["plain"]),
            flush=True,
        )


if __name__ == "__main__":
    main()
