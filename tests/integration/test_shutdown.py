"""Stopping the service gives its running jobs back to the queue: the executor closes before the job
store and the pool (dependency order of the container's resources), so nothing is lost, and the next
replica on the same store finishes the job."""

from __future__ import annotations

import os

import numpy as np
import pytest

from support.app import make_app, started
from support.eventually import eventually
from support.http import finished_job

PG_URL = os.environ.get("ML_WORKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.mark.parametrize("store", ["memory", pytest.param("postgres", marks=pytest.mark.integration)])
async def test_a_job_running_when_the_app_stops_goes_back_to_the_queue_for_the_next_replica(
    store: str,
) -> None:
    settings = {
        "compute": "process",
        "job_store": store,
        "job_store_url": PG_URL,
        "workers": 1,
        "threads_per_task": 1,
    }
    app = make_app(**settings)
    x = np.random.default_rng(0).normal(size=(100_000, 8))
    body = {"data": {"columns": {f"f{i}": x[:, i].tolist() for i in range(8)}}, "maxClusters": 10}
    async with started(app, timeout=120) as client:
        job_id = (await client.post("/analyze/segments", json=body)).json()["jobId"]

        async def status() -> str:
            answer: str = (await client.get(f"/status/{job_id}")).json()["status"]
            return answer

        await eventually(status, lambda s: s == "running", timeout=30, interval=0.05, what="the job running")
        store_after = app.state.services.job_store
        assert (await store_after.get(job_id)).status.value == "running"
    job = await store_after.get(job_id) if store == "memory" else await _read_back(job_id)
    # A deploy is not the job's failure: queued again, the attempt not counted, nobody's.
    assert job is not None and (job.status.value, job.attempts, job.owner, job.error) == (
        "queued",
        0,
        None,
        None,
    )
    if store == "memory":
        return  # the memory store dies with its process: documented, nothing to hand over
    # The next replica (a new pod) takes it from the queue and finishes it.
    async with started(make_app(**settings), timeout=120) as client:
        finished = await finished_job(client, f"/status/{job_id}", timeout=90)
    assert (finished["status"], finished["attempts"]) == ("completed", 1), finished


async def _read_back(job_id: str):  # type: ignore[no-untyped-def]
    from adapters.postgres.job_store import PostgresJobStore

    store = PostgresJobStore(PG_URL)
    await store.start()
    try:
        return await store.get(job_id)
    finally:
        await store.close()
