"""Benchmark: `/train/gbm` on a table of 5,000,000 rows x 20 columns, local against a LocalCluster.

The issue's figures (issue 16): wall time, peak RSS per process, AUC, and the API replica's growth
over idle (it must stay under 100 MB on the Dask path: it never holds the table). Each method runs
in a fresh subprocess that is the API replica (the real app, `ML_WORKER_COMPUTE=process`, called in
process over ASGI); a thread samples its RSS and its compute processes' every 50 ms. The Dask
workers' peaks come from the workers themselves (`psutil` through `client.run`), reset per run by
restarting the cluster's workers (`ru_maxrss`).

    .venv/bin/python bench/dask_training.py                      # 5M x 20, 100 trees, 2 workers
    .venv/bin/python bench/dask_training.py --rows 500000 --keep # reuse the table, keep it after

Needs PostgreSQL (ML_WORKER_TEST_DATABASE_URL, default postgres@127.0.0.1/test). Nothing here gates
CI; `--rows 30000 --iterations 5` is a smoke run. The README's "Past one machine: Dask" explains
what the figures imply for 100 million rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DSN = os.environ.get("ML_WORKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def table_name(rows: int) -> str:
    return f"ds_bench_dask_{rows}"


async def seed(rows: int, keep: bool) -> None:
    import asyncpg
    import numpy as np

    conn = await asyncpg.connect(DSN)
    try:
        name = table_name(rows)
        if keep and await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
            return
        numeric = ", ".join(f"x{i} double precision" for i in range(18))
        await conn.execute(
            f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({numeric}, region text, y integer)"
        )
        rng = np.random.default_rng(16)
        for start in range(0, rows, 500_000):
            n = min(500_000, rows - start)
            x = rng.normal(size=(n, 18))
            region = rng.choice(["north", "south", "east", "west", "centre"], n)
            y = x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] + (region == "east") + rng.normal(0, 1, n) > 0.5
            records = [
                (*row, r, int(v)) for row, r, v in zip(x.tolist(), region.tolist(), y.tolist(), strict=True)
            ]
            await conn.copy_records_to_table(name, records=records)
        await conn.execute(f"ANALYZE {name}")
    finally:
        await conn.close()


def run_one(rows: int, iterations: int, scheduler: str | None) -> dict[str, Any]:
    """In the subprocess: the app, one training, the RSS samples."""
    import httpx
    import psutil

    from entrypoints.http.app import create_app
    from entrypoints.settings import Settings

    settings = Settings(
        compute="process",
        job_store="memory",
        database_url=DSN,
        require_tenant_filter=False,
        dask_scheduler=scheduler,
        dask_min_rows=1,
        log_level="warning",
        train_timeout_seconds=3600,
    )
    me = psutil.Process()
    peaks: dict[str, int] = {"api": 0, "compute": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peaks["api"] = max(peaks["api"], me.memory_info().rss)
            children = me.children(recursive=True)
            peaks["compute"] = max(
                [peaks["compute"], *(c.memory_info().rss for c in children if c.is_running())]
            )
            time.sleep(0.05)

    async def train() -> dict[str, Any]:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", timeout=3600
            ) as client:
                idle = me.memory_info().rss
                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                started = time.perf_counter()
                answer = await client.post(
                    "/train/gbm",
                    json={
                        "data": {"table": table_name(rows)},
                        "label": "y",
                        "params": {"numIterations": iterations},
                        "includeReference": False,
                    },
                )
                wall = time.perf_counter() - started
                done.set()
                sampler.join()
        body = answer.json()
        if answer.status_code != 200:
            raise SystemExit(f"training failed: {answer.status_code} {answer.text[:500]}")
        return {
            "wall_s": round(wall, 2),
            "auc": body["metrics"]["auc"],
            "idle_mb": idle >> 20,
            "api_growth_mb": (peaks["api"] - idle) >> 20,
            "compute_peak_mb": peaks["compute"] >> 20,
            "stages_ms": body.get("durationMs"),
        }

    return asyncio.run(train())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="reuse the table if present, keep it after")
    parser.add_argument("--child", choices=["local", "dask"], help=argparse.SUPPRESS)
    parser.add_argument("--scheduler", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.rows, args.iterations, args.scheduler)))
        return

    from distributed import Client, LocalCluster

    asyncio.run(seed(args.rows, args.keep))
    results: dict[str, Any] = {}
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env={"DATABASE_URL": DSN},
        ) as cluster,
        Client(cluster) as client,
    ):
        for method in ("local", "dask"):
            client.restart()
            command = [
                sys.executable,
                __file__,
                "--child",
                method,
                "--rows",
                str(args.rows),
                "--iterations",
                str(args.iterations),
            ]
            if method == "dask":
                command += ["--scheduler", cluster.scheduler_address]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[method] = json.loads(out.strip().splitlines()[-1])
            if method == "dask":
                # Each worker's peak since the restart above (ru_maxrss is in KiB on Linux).
                peaks = client.run(lambda: __import__("resource").getrusage(0).ru_maxrss >> 10)
                results[method]["dask_worker_peak_mb"] = sorted(peaks.values())
    print(
        json.dumps(
            {
                "rows": args.rows,
                "columns": 20,
                "iterations": args.iterations,
                "load": os.getloadavg(),
                **results,
            },
            indent=2,
        )
    )
    if not args.keep:

        async def drop() -> None:
            import asyncpg

            conn = await asyncpg.connect(DSN)
            await conn.execute(f"DROP TABLE IF EXISTS {table_name(args.rows)}")
            await conn.close()

        asyncio.run(drop())


if __name__ == "__main__":
    main()
