"""POST /train/gbm end to end against plain lightgbm.train, side by side in one run.

    .venv/bin/python bench/train_gbm.py                        # 50,000 x 20: columns, rows, arrow
    .venv/bin/python bench/train_gbm.py --rows 1000000 --forms arrow --repeats 3 --health

The baseline is LightGBM as its users run it (bench/baseline.py): a fresh process with none of our
variables, LightGBM's defaults (objective binary, 100 trees) and the server's thread count, timed
from `lgb.Dataset` to the trained booster. Beside it, the same run under each OpenMP setting of
bench/omp_wait.py; the table gives the ratio to the plain baseline and to the best of them.

The server is `ml-worker serve` on 127.0.0.1 with its defaults (the whole CPU budget for one task),
trained with `validationFraction` 0 so that it trains on the same rows as the baseline. Every body is
encoded once, before any clock starts. Reported: medians, the server's stages, the server's RSS
growth over idle (process tree) against the size of the data, and with --health the latency of
GET /health probed every 20 ms while the trainings run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from baseline import OMP_SETTINGS, PLAIN, plain_env
from served import Server

ROOT = Path(__file__).resolve().parents[1]
TREES = 100
REQUEST = {"label": "label", "params": {"numIterations": TREES, "seed": 42}, "validationFraction": 0}
MEDIA_TYPES = {
    "columns": "application/json",
    "rows": "application/json",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}


def dataset(rows: int, features: int = 20, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    logit = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] * x[:, 3]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


RAW_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {bench!r})
from train_gbm import dataset
x, y = dataset({rows})
import lightgbm as lgb
params = dict(objective="binary", verbosity=-1, num_threads={threads})
times = []
for _ in range({repeats}):
    t = time.perf_counter()
    lgb.train(params, lgb.Dataset(x, label=y), num_boost_round={trees})
    times.append(time.perf_counter() - t)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"times": times, "peak_rss_mb": peak_mb}}))
"""


def raw_training(rows: int, threads: int, repeats: int, setting: dict[str, str]) -> dict:
    code = RAW_CHILD.format(
        bench=str(ROOT / "bench"), rows=rows, threads=threads, repeats=repeats, trees=TREES
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=plain_env(**setting)
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def payload(x: np.ndarray, y: np.ndarray, form: str) -> bytes:
    names = [f"x{i}" for i in range(x.shape[1])]
    if form in ("arrow", "parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({**{name: x[:, i] for i, name in enumerate(names)}, "label": y})
        sink = io.BytesIO()
        if form == "arrow":
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
        else:
            pq.write_table(table, sink)
        return sink.getvalue()
    if form == "columns":
        columns = {name: x[:, i].tolist() for i, name in enumerate(names)}
        columns["label"] = y.tolist()
        data: dict = {"columns": columns}
    else:
        rows = [dict(zip(names, row, strict=True)) for row in x.tolist()]
        for row, label in zip(rows, y.tolist(), strict=True):
            row["label"] = label
        data = {"rows": rows}
    return json.dumps({**REQUEST, "data": data}).encode()


def target(server: Server, form: str) -> str:
    if MEDIA_TYPES[form] == "application/json":
        return f"{server.url}/train/gbm"
    return f"{server.url}/train/gbm?request={urllib.parse.quote(json.dumps(REQUEST))}"


def chunks(body: bytes, size: int = 1 << 20) -> Iterator[memoryview]:
    view = memoryview(body)
    for start in range(0, len(view), size):
        yield view[start : start + size]


def time_requests(server: Server, body: bytes, form: str, repeats: int) -> tuple[list[float], list[dict]]:
    times, stages = [], []
    with httpx.Client(timeout=900) as client:
        for _ in range(repeats):
            t = time.perf_counter()
            # 1 MB chunks with a Content-Length: httpx given one bytes object copies the unsent rest
            # after every partial write (quadratic; bench/upload.py), which would time the client.
            headers = {"content-type": MEDIA_TYPES[form], "content-length": str(len(body))}
            answer = client.post(target(server, form), content=chunks(body), headers=headers)
            elapsed = time.perf_counter() - t
            if answer.status_code != 200:
                raise RuntimeError(f"{form}: {answer.status_code} {answer.text[:300]}")
            result = answer.json()
            times.append(elapsed)
            # threads: what the worker ran the training with (fewer than the budget when CPUs were busy)
            stages.append(
                {
                    **result["durationMs"],
                    "client": elapsed * 1000,
                    "auc": result["metrics"]["auc"],
                    "threads": result.get("threads"),
                }
            )
    return times, stages


STAGES = ("upload", "decode", "prepare", "train", "evaluate", "dump")


def median_stages(stages: list[dict]) -> dict:
    keys = {k for s in stages for k in s if isinstance(s[k], int | float) and k != "threads"}
    med = {k: statistics.median(s.get(k, 0.0) or 0.0 for s in stages) for k in keys}
    if "upload" not in med:  # a server from before the upload/decode split reports them as one
        med["upload"], med["decode"] = med.get("parse", 0.0), 0.0
    worker = med["prepare"] + med["train"] + med["evaluate"] + med["dump"]
    med["transfer+other"] = med["total"] - med["upload"] - med["decode"] - worker
    med["respond"] = med["client"] - med["total"]
    return med


class HealthProbe:
    """GET /health every 20 ms from its own client while `running` is set."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.running = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True)
        self._thread.start()

    def _probe(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._done.is_set():
                if self.running.is_set():
                    t = time.perf_counter()
                    client.get(f"{self.url}/health")
                    self.latencies.append((time.perf_counter() - t) * 1000)
                time.sleep(0.02)

    def close(self) -> None:
        self._done.set()
        self._thread.join()

    def summary(self) -> str:
        ordered = sorted(self.latencies) or [float("nan")]
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        median = statistics.median(ordered)
        return f"n={len(ordered)} p50 {median:.1f} ms, p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms"


def run(rows: int, repeats: int, forms: list[str], settings: list[str], health: bool) -> None:
    x, y = dataset(rows)
    data_mb = (x.nbytes + y.nbytes) / 1e6
    bodies = {form: payload(x, y, form) for form in forms}
    load = os.getloadavg()[0]
    server = Server(ML_WORKER_MAX_BODY_MB="2048")
    threads = server.health["compute"]["threadsPerTask"]
    try:
        raw = {name: raw_training(rows, threads, repeats, OMP_SETTINGS[name]) for name in settings}
        medians = {name: statistics.median(r["times"]) for name, r in raw.items()}
        plain = medians[PLAIN]
        best_name = min(medians, key=medians.__getitem__)
        best = medians[best_name]
        print(
            f"\n{rows:,} rows x {x.shape[1]} features ({data_mb:.0f} MB as float64), {TREES} trees, "
            f"{threads} threads, validationFraction 0, median of {repeats}; load average {load:.2f}"
        )
        print(f"{'path':<34}{'median s':>9}{'x plain':>9}{'x best':>8}")
        for name, median in medians.items():
            print(f"{'lgb.train, ' + name:<34}{median:>9.3f}{median / plain:>9.2f}{median / best:>8.2f}")
        probe = HealthProbe(server.url) if health else None
        for form in forms:
            body = bodies[form]
            if probe:
                probe.running.set()
            times, stages = time_requests(server, body, form, repeats)
            if probe:
                probe.running.clear()
            med = statistics.median(times)
            print(
                f"{'POST ' + form:<34}{med:>9.3f}{med / plain:>9.2f}{med / best:>8.2f}   "
                f"body {len(body) / 1e6:.0f} MB, AUC {stages[0]['auc']:.4f}, "
                f"threads {[s['threads'] for s in stages]}"
            )
            breakdown = median_stages(stages)
            shown = (*STAGES, "transfer+other", "respond")
            print("    stages (ms): " + ", ".join(f"{k} {breakdown[k]:.0f}" for k in shown))
            if breakdown["decode"]:
                print(f"    decode {len(body) / 1e6 / (breakdown['decode'] / 1000):.0f} MB/s of body")
        if probe:
            probe.close()
            print(f"GET /health during the trainings: {probe.summary()}")
        growth = (server.peak_rss - server.idle_rss) / 1e6
        print(
            f"best baseline: {best_name}; server RSS idle {server.idle_rss / 1e6:.0f} MB, peak "
            f"{server.peak_rss / 1e6:.0f} MB: growth {growth:.0f} MB = {growth / data_mb:.1f}x the data"
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument(
        "--forms", default="columns,rows,arrow", help="comma-separated: " + ",".join(MEDIA_TYPES)
    )
    parser.add_argument(
        "--settings", default="all", help="OpenMP settings of the baseline: all, or plain (just the baseline)"
    )
    parser.add_argument("--health", action="store_true", help="probe GET /health during the trainings")
    args = parser.parse_args()
    settings = list(OMP_SETTINGS) if args.settings == "all" else [PLAIN]
    run(args.rows, args.repeats, args.forms.split(","), settings, args.health)
    print(
        f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"bench peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
