"""Job store outages and a killed replica, end to end, with Redis and then PostgreSQL.

    PYTHONPATH=src .venv/bin/python bench/store_outage.py [--jobs 20] [--outage 20] [--lease 30]

For each store: two replicas (`ml-worker serve` processes, one compute worker each) share the store
through a TCP proxy. N segmentation jobs go to them in turn; the proxy is stopped for `--outage`
seconds while they run (a third replica is started during the outage); then the store is silent
(the proxy accepts but forwards nothing) for 5 s while a submit and a /status are timed; then N more
jobs, and one replica is killed with SIGKILL (its whole process group: server and pool). Printed:
jobs completed / failed by code / stuck (still queued or running at the end), and what the replicas
answered during the outage. Bounded: each phase waits at most a lease plus 120 s for its jobs.

Needs the local Redis (REDIS_URL) and PostgreSQL (ML_WORKER_TEST_DATABASE_URL) the tests use. Keys
and the table live under a prefix and a schema of their own, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tests"))
from tcp_proxy import TcpProxy  # noqa: E402

from support.replicas import (  # noqa: E402
    Replica,
    answered,
    drop_namespace,
    outcomes,
    start_replica,
    store_namespace,
    submit,
    tally,
    wait_live,
)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("ML_WORKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _segments_body(rows: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4, size=(4, 4))
    x = centres[rng.integers(0, 4, rows)] + rng.normal(size=(rows, 4))
    return {"data": {"columns": {f"f{i}": x[:, i].round(4).tolist() for i in range(4)}}, "maxClusters": 6}


async def run_store(kind: str, args: argparse.Namespace, log_dir: Path) -> None:
    target = make_url(REDIS_URL if kind == "redis" else DATABASE_URL)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or (6379 if kind == "redis" else 5432))
    await proxy.start()
    through = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    run = uuid.uuid4().hex[:10]
    env = {
        "ML_WORKER_JOB_STORE": kind,
        "ML_WORKER_WORKERS": "1",
        "ML_WORKER_THREADS_PER_TASK": "1",
        "ML_WORKER_QUEUE_LIMIT": str(args.jobs * 2),
        "ML_WORKER_JOB_LEASE_SECONDS": str(args.lease),
        "ML_WORKER_LOG_LEVEL": "warning",
        "ML_WORKER_LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT / "src"),
    }
    if kind == "redis":
        env |= {"REDIS_URL": through, "ML_WORKER_REDIS_KEY_PREFIX": store_namespace(kind, f"mlw_bench_{run}")}
    else:
        env |= {
            "ML_WORKER_JOB_STORE_URL": through,
            "ML_WORKER_JOB_STORE_TABLE": store_namespace(kind, f"mlw_bench_{run}"),
        }
    replicas = [start_replica(f"{kind}-a", env, log_dir), start_replica(f"{kind}-b", env, log_dir)]
    a, b = replicas
    body = _segments_body(args.rows, seed=1)
    bound = args.lease + 120
    try:
        async with httpx.AsyncClient() as client:
            for replica in replicas:
                await wait_live(client, replica, "/health")

            # -- outage: the proxy stopped (connections refused) while jobs run
            ids: list[str] = []
            for i in range(args.jobs):
                status, job_id = await submit(client, replicas[i % 2], body)
                assert job_id is not None, status
                ids.append(job_id)
            await asyncio.sleep(args.lead)
            await proxy.stop()
            down_at = time.monotonic()
            late = start_replica(f"{kind}-c", env, log_dir)
            replicas.append(late)
            refused, refused_in = await submit_timed(client, a, body)
            during: collections.Counter[str] = collections.Counter()
            late_up: float | None = None
            while time.monotonic() - down_at < args.outage - 0.5:
                for replica in (a, b) if late_up is None else (a, b, late):
                    for path in ("/health", "/health/live"):
                        during[f"{path} {(await answered(client, replica, path))[0]}"] += 1
                if late_up is None and (await answered(client, late, "/health/live"))[0] == 200:
                    late_up = time.monotonic() - down_at
                await asyncio.sleep(1.0)
            await asyncio.sleep(max(0.0, args.outage - (time.monotonic() - down_at)))
            await proxy.start()
            outage = time.monotonic() - down_at
            ready_after = await wait_live(client, late, "/health")
            status, extra = await submit(client, late, body)
            assert extra is not None, status
            jobs, waited = await outcomes(client, b, [*ids, extra], bound)
            finished_while_down = sum(
                1 for job in jobs.values() if job.get("finishedAt") and _during(job, down_at, outage)
            )
            print(f"{kind:8s} outage {outage:.1f} s (lease {args.lease:g} s): {tally(jobs)}")
            print(
                f"{'':8s}   {finished_while_down} finished while the store was down; all final "
                f"{waited:.1f} s after it was back; a submit during the outage: {refused} "
                f"in {refused_in:.2f} s"
            )
            print(f"{'':8s}   probes of the replicas during the outage: {dict(during)}")
            started_note = "never, before the store was back" if late_up is None else f"{late_up:.1f} s in"
            print(
                f"{'':8s}   replica C, started during the outage: live {started_note}; "
                f"/health 200 {ready_after:.1f} s after the store was back; its job is among those above"
            )

            # -- silent: the proxy accepts but forwards nothing
            proxy.pause()
            silent_submit, submit_s = await submit_timed(client, a, body)
            status_code, status_s = await answered(client, a, f"/status/{ids[0]}")
            health_code, health_s = await answered(client, a, "/health")
            live_code, live_s = await answered(client, a, "/health/live")
            proxy.resume()
            print(
                f"{kind:8s} silent store: submit {silent_submit} in {submit_s:.2f} s, "
                f"/status {status_code} in {status_s:.2f} s, /health {health_code} in {health_s:.2f} s, "
                f"/health/live {live_code} in {live_s:.3f} s"
            )
            await wait_live(client, a, "/health")

            # -- kill -9 of replica A while jobs run
            ids = []
            for i in range(args.jobs):
                status, job_id = await submit(client, (a, b)[i % 2], body)
                assert job_id is not None, status
                ids.append(job_id)
            await asyncio.sleep(args.lead)
            a.kill()
            jobs, waited = await outcomes(client, b, ids, bound)
            print(f"{kind:8s} kill -9 of one replica: {tally(jobs)}; all final {waited:.1f} s after the kill")
    finally:
        for replica in replicas:
            replica.stop()
        print(
            f"{'':8s}   replica CPU seconds: " + ", ".join(f"{r.name} {r.cpu_seconds:.1f}" for r in replicas)
        )
        await proxy.stop()
        await drop_namespace(kind, store_namespace(kind, f"mlw_bench_{run}"))


def _during(job: dict[str, Any], down_at: float, outage: float) -> bool:
    # finishedAt is wall time; down_at is monotonic: compare through the offset between the two.
    finished = datetime.fromisoformat(job["finishedAt"].replace("Z", "+00:00")).timestamp()
    down_wall = time.time() - (time.monotonic() - down_at)
    return down_wall <= finished <= down_wall + outage


async def submit_timed(
    client: httpx.AsyncClient, replica: Replica, body: dict[str, Any]
) -> tuple[int, float]:
    started = time.monotonic()
    status, _ = await submit(client, replica, body)
    return status, time.monotonic() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs per phase (split over two replicas)")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the store is down")
    parser.add_argument("--lease", type=float, default=30.0, help="ML_WORKER_JOB_LEASE_SECONDS")
    parser.add_argument("--rows", type=int, default=20_000, help="rows per segmentation job")
    parser.add_argument("--lead", type=float, default=5.0, help="seconds of work before the outage or kill")
    parser.add_argument("--stores", default="redis,postgres")
    args = parser.parse_args()
    log_dir = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/ml-worker-store-outage"))
    os.makedirs(log_dir, exist_ok=True)
    started = time.monotonic()
    print(f"load average before: {os.getloadavg()[0]:.2f}; replica logs in {log_dir}")
    for kind in args.stores.split(","):
        await run_store(kind, args, log_dir)
    own = psutil.Process().cpu_times()
    print(
        f"wall {time.monotonic() - started:.0f} s; this process {own.user + own.system:.1f} CPU s; "
        f"load average after: {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
