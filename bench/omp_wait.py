"""How OpenMP's wait behaviour changes LightGBM and scikit-learn, on a quiet machine and with one
other process spinning on one core (what a neighbouring task or pod does to a 2-core worker).

    .venv/bin/python bench/omp_wait.py                 # 50,000 x 20, 100 trees, median of 3
    .venv/bin/python bench/omp_wait.py --repeats 5 --workload kmeans

Each run is a fresh process whose only changes from a plain `python` are the variables in the
table, so the first row is LightGBM as its users run it. The chosen setting is the one that
src/adapters/compute/worker_main.py gives the compute workers; this script is how it was chosen.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from baseline import OMP_SETTINGS, plain_env

BENCH = Path(__file__).resolve().parent

SETTINGS = OMP_SETTINGS

CHILD = """
import json, sys, time
sys.path.insert(0, {bench!r})
from train_gbm import dataset
x, y = dataset({rows})
times = []
if {workload!r} == "lightgbm":
    import lightgbm as lgb
    params = dict(objective="binary", verbosity=-1, num_threads={threads})
    for _ in range({repeats}):
        t = time.perf_counter()
        lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=100)
        times.append(time.perf_counter() - t)
else:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits
    with threadpool_limits({threads}):
        for _ in range({repeats}):
            t = time.perf_counter()
            KMeans(8, n_init=3, random_state=0).fit(x)
            times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def measure(extra: dict[str, str], *, rows: int, threads: int, repeats: int, workload: str) -> float:
    code = CHILD.format(bench=str(BENCH), rows=rows, threads=threads, repeats=repeats, workload=workload)
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=plain_env(**extra),
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return statistics.median(json.loads(out.stdout.strip().splitlines()[-1]))


def spinner() -> subprocess.Popen[bytes]:
    """One process busy on one core, as a neighbour would be."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workload", choices=("lightgbm", "kmeans"), default="lightgbm")
    parser.add_argument("--only", action="append", help="measure only these settings (by table name)")
    args = parser.parse_args()
    settings = {k: v for k, v in SETTINGS.items() if not args.only or k in args.only}
    print(
        f"load average at start {os.getloadavg()[0]:.2f}; {args.workload}, {args.rows:,} x 20, "
        f"{args.threads} threads, median of {args.repeats} (s)"
    )
    print(f"{'setting':<26}{'quiet':>9}{'contended':>11}")
    for name, extra in settings.items():
        quiet = measure(
            extra, rows=args.rows, threads=args.threads, repeats=args.repeats, workload=args.workload
        )
        neighbour = spinner()
        try:
            time.sleep(0.5)
            contended = measure(
                extra, rows=args.rows, threads=args.threads, repeats=args.repeats, workload=args.workload
            )
        finally:
            neighbour.kill()
            neighbour.wait()
        print(f"{name:<26}{quiet:>9.3f}{contended:>11.3f}", flush=True)


if __name__ == "__main__":
    main()
