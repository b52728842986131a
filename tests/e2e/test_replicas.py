"""Two replicas (real `ml-worker serve` processes, one compute worker each) on one job store: a
burst is queued, not refused, and both replicas run it; a replica killed with SIGKILL mid-job loses
nothing: its job runs again on the other, and no job ends WORKER_LOST or stays stuck. (The figures,
at 200 jobs: bench/job_queue.py.)"""

from __future__ import annotations

import asyncio
import collections
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from support.replicas import (
    DATABASE_URL,
    REDIS_URL,
    Replica,
    drop_namespace,
    outcomes,
    start_replica,
    store_namespace,
    submit,
    wait_live,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LEASE = 3.0


def _body(rows: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=4, size=(3, 3))[rng.integers(0, 3, rows)] + rng.normal(size=(rows, 3))
    return {"data": {"columns": {f"f{i}": x[:, i].round(3).tolist() for i in range(3)}}, "maxClusters": 4}


def _pid(job: dict[str, Any]) -> int | None:
    """The server that ran the job's last attempt: `replica` is host-pid-random."""
    parts = (job.get("replica") or "").rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


@pytest.fixture(params=["redis", "postgres"])
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[list[Replica]]:
    kind: str = request.param
    run = uuid.uuid4().hex[:10]
    env = {
        "ML_WORKER_JOB_STORE": kind,
        "ML_WORKER_WORKERS": "1",
        "ML_WORKER_JOB_LEASE_SECONDS": str(LEASE),
        "ML_WORKER_LOG_LEVEL": "warning",
        "ML_WORKER_LOG_FORMAT": "json",
        "REDIS_URL": REDIS_URL,
        "ML_WORKER_REDIS_KEY_PREFIX": store_namespace("redis", f"mlw_replicas_{run}"),
        "ML_WORKER_JOB_STORE_URL": DATABASE_URL,
        "ML_WORKER_JOB_STORE_TABLE": store_namespace("postgres", f"mlw_replicas_{run}"),
    }
    logs = Path(tempfile.mkdtemp(prefix="replicas-"))
    started = [start_replica(f"{kind}-{name}", env, logs) for name in ("a", "b")]
    try:
        async with httpx.AsyncClient() as client:
            for replica in started:
                await wait_live(client, replica, "/health")
        yield started
    finally:
        for replica in started:
            replica.stop()
        await drop_namespace(kind, store_namespace(kind, f"mlw_replicas_{run}"))


async def test_a_burst_is_queued_and_run_by_both_replicas_then_a_killed_one_loses_nothing(
    replicas: list[Replica],
) -> None:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as client:
        # A burst sent at once: every job accepted, every one completed, by both replicas.
        answers = await asyncio.gather(*(submit(client, replicas[i % 2], _body(200, i)) for i in range(100)))
        assert collections.Counter(status for status, _ in answers) == {202: 100}
        jobs, _ = await outcomes(client, replicas[0], [job_id for _, job_id in answers if job_id], bound=180)
        assert collections.Counter(job["status"] for job in jobs.values()) == {"completed": 100}
        ran = collections.Counter(_pid(job) for job in jobs.values())
        assert set(ran) == {r.process.pid for r in replicas}, ran
        assert all(job["attempts"] == 1 for job in jobs.values())

        # Longer jobs; the second replica is killed while it runs one.
        victim = replicas[1]
        answers = [await submit(client, replicas[i % 2], _body(400_000, 1000 + i)) for i in range(6)]
        ids = [job_id for _, job_id in answers if job_id]
        assert len(ids) == 6
        killed_job = None
        deadline = time.monotonic() + 60
        while killed_job is None and time.monotonic() < deadline:
            for job_id in ids:
                job = (await client.get(f"{replicas[0].url}/status/{job_id}")).json()
                # Not near its end (progress is up to a heartbeat old): killed now, it is still
                # running, or the victim already runs its next job.
                mid_run = job["status"] == "running" and job["progress"] < 0.6
                if mid_run and _pid(job) == victim.process.pid:
                    killed_job = job_id
                    break
            await asyncio.sleep(0.05)
        assert killed_job is not None, "the second replica never ran a job"
        victim.kill()
        jobs, _ = await outcomes(client, replicas[0], ids, bound=120)
    assert collections.Counter(job["status"] for job in jobs.values()) == {"completed": 6}, jobs
    # The job the killed replica was running when it died (the one seen, or the next it took) ran
    # again on the survivor, on its second attempt; every other job ran once.
    twice = [job for job in jobs.values() if job["attempts"] == 2]
    assert [(_pid(job), job["status"]) for job in twice] == [(replicas[0].process.pid, "completed")], jobs
    assert all(job["attempts"] == 1 for job in jobs.values() if job not in twice)
