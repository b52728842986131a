"""The durable job queue with two replicas on one store: a burst, then a replica killed mid-run.

    PYTHONPATH=src .venv/bin/python bench/job_queue.py [--store redis|postgres|both] [--jobs 200]
        [--kill-jobs 40] [--lease 10]

For each store: two replicas (`ml-worker serve`, one compute worker each) share the store.
1. Burst: `--jobs` small segmentation jobs are sent at once, alternately to each replica. Printed:
   the answers (202 or not), the outcomes, how many each replica ran, and the time from submission
   to completion (p50, p99, from the jobs' own createdAt/finishedAt).
2. Kill: `--kill-jobs` longer jobs (about 2 s each) are queued; once the second replica is running
   one, its process group (server and pool) is killed with SIGKILL. Printed: the outcomes (every job
   should complete, the killed one's on its second attempt), none WORKER_LOST, none stuck.
3. Big: `--big` segmentation bodies of `--big-rows` rows (about 18 MB of JSON at 540,000) sent at
   once to the first replica: the answers (queued, not refused), the outcomes, and the peak RSS of
   its process tree against idle.

Needs the local Redis (REDIS_URL) and PostgreSQL (ML_WORKER_TEST_DATABASE_URL); keys and the table
live under a prefix and a schema of their own, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from support.replicas import (  # noqa: E402
    DATABASE_URL,
    REDIS_URL,
    Replica,
    drop_namespace,
    outcomes,
    refusals,
    start_replica,
    store_namespace,
    submit,
    tally,
    wait_live,
)


def segments_body(rows: int, seed: int, max_clusters: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4, size=(4, 4))
    x = centres[rng.integers(0, 4, rows)] + rng.normal(size=(rows, 4))
    columns = {f"f{i}": x[:, i].round(4).tolist() for i in range(4)}
    return {"data": {"columns": columns}, "maxClusters": max_clusters}


def _seconds(job: dict[str, Any]) -> float:
    return (
        datetime.fromisoformat(job["finishedAt"]) - datetime.fromisoformat(job["createdAt"])
    ).total_seconds()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def store_env(kind: str, namespace: str, lease: float) -> dict[str, str]:
    env = {
        "ML_WORKER_JOB_STORE": kind,
        "ML_WORKER_WORKERS": "1",
        "ML_WORKER_JOB_LEASE_SECONDS": str(lease),
        "ML_WORKER_LOG_LEVEL": "warning",
        "ML_WORKER_LOG_FORMAT": "json",
    }
    if kind == "redis":
        env |= {"REDIS_URL": REDIS_URL, "ML_WORKER_REDIS_KEY_PREFIX": namespace}
    else:
        env |= {"ML_WORKER_JOB_STORE_URL": DATABASE_URL, "ML_WORKER_JOB_STORE_TABLE": namespace}
    return env


def ran_on(job: dict[str, Any]) -> str:
    """The pid of the server that ran the job's last attempt (`replica` is host-pid-random)."""
    parts = (job.get("replica") or "").rsplit("-", 2)
    return parts[1] if len(parts) == 3 else ""


def by_replica(jobs: dict[str, dict[str, Any]], replicas: list[Replica]) -> dict[str, int]:
    """How many completed jobs each replica ran."""
    names = {str(r.process.pid): r.name for r in replicas}
    counts: collections.Counter[str] = collections.Counter()
    for job in jobs.values():
        counts[names.get(ran_on(job), job.get("replica") or "none")] += job["status"] == "completed"
    return dict(counts)


async def burst(client: httpx.AsyncClient, replicas: list[Replica], count: int) -> None:
    bodies = [segments_body(300, seed, 4) for seed in range(count)]
    started = time.monotonic()
    answers = await asyncio.gather(
        *(submit(client, replicas[i % 2], body) for i, body in enumerate(bodies)), return_exceptions=True
    )
    sent = time.monotonic() - started
    codes = collections.Counter(a[0] if isinstance(a, tuple) else type(a).__name__ for a in answers)
    ids = [a[1] for a in answers if isinstance(a, tuple) and a[1]]
    jobs, waited = await outcomes(client, replicas[0], ids, bound=300)
    seconds = sorted(_seconds(j) for j in jobs.values() if j["status"] == "completed")
    print(f"  burst: {count} submitted in {sent:.2f} s, answers {dict(codes)} {dict(refusals)}")
    refusals.clear()
    print(f"  burst: {tally(jobs)}; ran by {by_replica(jobs, replicas)}")
    print(
        f"  burst: submission -> completion p50 {percentile(seconds, 50):.2f} s, "
        f"p99 {percentile(seconds, 99):.2f} s, max {max(seconds, default=float('nan')):.2f} s; "
        f"all final {waited:.1f} s after the last answer"
    )


async def kill_one(client: httpx.AsyncClient, replicas: list[Replica], count: int, lease: float) -> None:
    victim = replicas[1]
    answers = [
        await submit(client, replicas[i % 2], segments_body(150_000, 1000 + i, 8)) for i in range(count)
    ]
    ids = [job_id for status, job_id in answers if job_id]
    print(f"  kill: {count} submitted, answers {dict(collections.Counter(s for s, _ in answers))}")
    deadline = time.monotonic() + 120
    victim_job = None
    while victim_job is None and time.monotonic() < deadline:
        for job_id in ids:
            job = (await client.get(f"{replicas[0].url}/status/{job_id}")).json()
            # Not near its end: killed now, it cannot have written its outcome first.
            mid_run = job["status"] == "running" and job["progress"] < 0.6
            if mid_run and ran_on(job) == str(victim.process.pid):
                victim_job = job_id
                break
        await asyncio.sleep(0.1)
    if victim_job is None:
        print("  kill: the second replica never ran a job; nothing killed")
        return
    victim.kill()
    killed_at = time.monotonic()
    jobs, _ = await outcomes(client, replicas[0], ids, bound=lease * 4 + 240)
    print(f"  kill: SIGKILL to {victim.name} while it ran {victim_job}")
    print(f"  kill: {tally(jobs)}; ran by {by_replica(jobs, replicas)}")
    killed = jobs.get(victim_job, {})
    print(
        f"  kill: the killed job ended {killed.get('status')} on attempt {killed.get('attempts')}; all final "
        f"{time.monotonic() - killed_at:.1f} s after the kill (lease {lease:g} s)"
    )
    lost = sum((j.get("error") or {}).get("code") == "WORKER_LOST" for j in jobs.values())
    attempts = collections.Counter(j.get("attempts") for j in jobs.values())
    print(f"  kill: WORKER_LOST {lost}, jobs by attempts {dict(attempts)}")


async def big_bodies(client: httpx.AsyncClient, replica: Replica, count: int, rows: int) -> None:
    """`count` large segmentation bodies at once to one replica: queued (202), not refused."""
    body = json.dumps(segments_body(rows, 7, 6)).encode()
    rss_before = replica.rss()
    peak = rss_before
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, replica.rss())
            await asyncio.sleep(0.05)

    sampler = asyncio.ensure_future(sample())
    started = time.monotonic()
    answers = await asyncio.gather(
        *(
            client.post(
                f"{replica.url}/analyze/segments",
                content=body,
                headers={"content-type": "application/json"},
                timeout=300,
            )
            for _ in range(count)
        )
    )
    sent = time.monotonic() - started
    codes = collections.Counter(
        f"{a.status_code}" + ("" if a.status_code == 202 else f" {a.json()['error']['code']}")
        for a in answers
    )
    ids = [a.json()["jobId"] for a in answers if a.status_code == 202]
    jobs, _ = await outcomes(client, replica, ids, bound=900)
    sampling = False
    await sampler
    print(
        f"  big: {count} bodies of {len(body) / 1e6:.1f} MB at once to one replica, "
        f"answered in {sent:.1f} s: "
        f"{dict(codes)}; {tally(jobs)}; server tree RSS idle {rss_before / 2**20:.0f} MB, "
        f"peak {peak / 2**20:.0f} MB"
    )


async def run_store(kind: str, args: argparse.Namespace, log_dir: Path) -> None:
    run = uuid.uuid4().hex[:10]
    namespace = store_namespace(kind, f"mlw_queue_{run}")
    env = store_env(kind, namespace, args.lease)
    replicas = [start_replica(f"{kind}-{name}", env, log_dir) for name in ("a", "b")]
    try:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=400)) as client:
            for replica in replicas:
                await wait_live(client, replica, "/health")
            print(f"{kind}: two replicas, one compute worker each, lease {args.lease:g} s")
            await burst(client, replicas, args.jobs)
            await kill_one(client, replicas, args.kill_jobs, args.lease)
            if args.big:
                await big_bodies(client, replicas[0], args.big, args.big_rows)
    finally:
        for replica in replicas:
            replica.stop()
        await drop_namespace(kind, namespace)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["redis", "postgres", "both"], default="both")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--kill-jobs", type=int, default=40)
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--big", type=int, default=30, help="large bodies sent at once (0: none)")
    parser.add_argument("--big-rows", type=int, default=540_000, help="rows of each large body")
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-job-queue-"))
    print(f"replica logs: {log_dir}; load at start {os.getloadavg()[0]:.2f}")
    for kind in ["redis", "postgres"] if args.store == "both" else [args.store]:
        await run_store(kind, args, log_dir)


if __name__ == "__main__":
    asyncio.run(main())
