"""Benchmark of the contact-policy analysis: wall time and peak RSS at 1M and 5M interactions.

Each run is a fresh subprocess that loads a pre-generated interaction log (Arrow IPC, made once by
the seeded simulator of tests/unit/policy_sim.py) and runs PolarsPolicyAnalyzer on it, so one run's
memory does not leak into the next. Reported: the median of 3 runs (wall, with min-max, and CPU
seconds, which a busy machine inflates less than wall time), the peak RSS of the process (dataset
included) and the RSS once the dataset was loaded, for comparison.

    .venv/bin/python bench/policies.py [--sizes 1000000 5000000] [--repeats 3] [--formats iso epoch_ms]

Target (issue 4): 1M interactions in at most 5 s. Never gates CI.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "unit"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def child(path: str) -> None:
    """One measured run: load, analyse, print a JSON line."""
    import polars as pl

    from adapters.frames import PolarsDataset
    from adapters.policies.analyzer import PolarsPolicyAnalyzer
    from domain.policies import PolicySpec

    frame = pl.read_ipc(path)
    loaded = _rss_mb()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = PolarsPolicyAnalyzer().analyze(PolarsDataset(frame), PolicySpec(), lambda f, m="": None)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # kB on Linux
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "peak_mb": peak,
                "loaded_mb": loaded,
                "rows": frame.height,
                "cap": result.recommended_weekly_cap,
                "customer_weeks": result.summary.customer_weeks,
            }
        )
    )


def generate(rows: int, fmt: str, path: Path) -> int:
    from policy_sim import SimConfig, rows_per_customer, simulate

    # A pilot run calibrates rows per customer (fatigue lowers clicks below the estimate).
    pilot = simulate(SimConfig(customers=2_000, timestamp_format="epoch_s", seed=1))
    per_customer = pilot.height / 2_000 or rows_per_customer(SimConfig())
    config = SimConfig(customers=max(1, round(rows / per_customer)), timestamp_format=fmt, seed=2024)
    frame = simulate(config)
    frame.write_ipc(path)
    return frame.height


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--formats", nargs="+", default=["iso"], choices=["iso", "epoch_s", "epoch_ms"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for fmt in args.formats:
                path = Path(tmp) / f"interactions-{size}-{fmt}.arrow"
                actual = generate(size, fmt, path)
                runs = []
                for _ in range(args.repeats):
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", str(path)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                walls = [r["wall"] for r in runs]
                lines.append(
                    {
                        "rows": actual,
                        "format": fmt,
                        "wall": statistics.median(walls),
                        "min": min(walls),
                        "max": max(walls),
                        "cpu": statistics.median(r["cpu"] for r in runs),
                        "peak": statistics.median(r["peak_mb"] for r in runs),
                        "loaded": statistics.median(r["loaded_mb"] for r in runs),
                        "cap": runs[0]["cap"],
                        "cw": runs[0]["customer_weeks"],
                    }
                )
                print(f"done {actual:,} rows ({fmt})", file=sys.stderr)

    header = (
        f"{'rows':>11} {'timestamps':>10} {'median s':>9} {'min-max s':>13} {'CPU s':>7} {'peak RSS MB':>12} "
        f"{'data RSS MB':>12} {'cust-weeks':>11} {'cap':>4} {'s per 1M':>9}"
    )
    print(header)
    print("-" * len(header))
    for line in lines:
        per_million = line["wall"] / (line["rows"] / 1e6)
        print(
            f"{line['rows']:>11,} {line['format']:>10} {line['wall']:>9.2f} "
            f"{line['min']:>6.2f}-{line['max']:<6.2f} {line['cpu']:>7.2f} "
            f"{line['peak']:>12.0f} {line['loaded']:>12.0f} "
            f"{line['cw']:>11,} {line['cap']!s:>4} {per_million:>9.2f}"
        )
    load = os.getloadavg()
    print(f"\ncpus: {os.cpu_count()}, load average at the end {load[0]:.1f}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
