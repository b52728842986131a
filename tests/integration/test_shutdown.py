"""Stopping the service records its running jobs as failed SHUTDOWN: the executor closes before the
job store and the pool (dependency order of the container's resources), so nothing is lost silently."""

from __future__ import annotations

import os

import numpy as np
import pytest

from support.app import make_app, started
from support.eventually import eventually

PG_URL = os.environ.get("ML_WORKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.mark.parametrize("store", ["memory", pytest.param("postgres", marks=pytest.mark.integration)])
async def test_running_jobs_end_failed_shutdown_when_the_app_stops(store: str) -> None:
    app = make_app(compute="process", job_store=store, job_store_url=PG_URL, workers=1, threads_per_task=1)
    x = np.random.default_rng(0).normal(size=(300_000, 8))
    body = {"data": {"columns": {f"f{i}": x[:, i].tolist() for i in range(8)}}, "maxClusters": 20}
    async with started(app, timeout=120) as client:
        job_id = (await client.post("/analyze/segments", json=body)).json()["jobId"]

        async def status() -> str:
            answer: str = (await client.get(f"/status/{job_id}")).json()["status"]
            return answer

        await eventually(status, lambda s: s == "running", timeout=30, interval=0.05, what="the job running")
        store_after = app.state.services.job_store
        assert (await store_after.get(job_id)).status.value == "running"
    job = await store_after.get(job_id) if store == "memory" else await _read_back(job_id)
    assert job is not None and job.status.value == "failed"
    assert job.error is not None and job.error.code == "SHUTDOWN"


async def _read_back(job_id: str):  # type: ignore[no-untyped-def]
    from adapters.postgres.job_store import PostgresJobStore

    store = PostgresJobStore(PG_URL)
    await store.start()
    try:
        return await store.get(job_id)
    finally:
        await store.close()
