"""The job engine over every job store (real Redis and PostgreSQL): a compute process killed mid-job
fails its job `WORKER_LOST`; the job of a replica that died runs again on another replica; a cancel
written by any replica reaches the job. Never `running` forever."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from adapters.compute.process_pool import ProcessPoolRunner
from adapters.job_payload import PickledJobInputs
from application.job_executor import JobExecutor, JobSettings
from domain.jobs import Job, JobStatus
from support.eventually import eventually
from support.jobs import submit_task, task_handlers, task_input
from support.presenter import DocumentPresenter

from .engine_tasks import pid_then_sleep
from .job_store_harness import StoreHarness

# Virtual time that passes with each look at the store: heartbeats and reaper passes come due on the
# harness's fake clock while the real processes and servers do their part.
TICK = 0.05


async def _wait_for(harness: StoreHarness, store, job_id: str, predicate, timeout: float = 60.0) -> Job:  # type: ignore[no-untyped-def]
    async def look() -> Job | None:
        await harness.clock.elapse(TICK)
        job: Job | None = await store.get(job_id)
        return job

    return await eventually(
        look,
        lambda job: job is not None and predicate(job),
        timeout=timeout,
        interval=TICK,
        what=f"the state wanted of job {job_id}",
    )


async def test_a_killed_compute_process_fails_its_job_with_worker_lost(
    harness: StoreHarness, tmp_path: Path
) -> None:
    store = await harness.make()
    runner = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=2)
    await runner.start()
    executor = JobExecutor(
        store,
        runner,
        harness.clock,
        JobSettings(heartbeat_seconds=0.1),
        DocumentPresenter(),
        PickledJobInputs(),
    )
    task_handlers(executor)
    await executor.start()
    try:
        pid_file = tmp_path / "pid"
        job = await submit_task(executor, "segmentation", pid_then_sleep, str(pid_file), 60.0)
        await _wait_for(harness, store, job.id, lambda j: j.status is JobStatus.RUNNING and pid_file.exists())
        await asyncio.sleep(0.1)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        failed = await _wait_for(harness, store, job.id, lambda j: j.status.is_final, timeout=10)
        assert failed.status is JobStatus.FAILED
        assert failed.error is not None and failed.error.code == "WORKER_LOST"
    finally:
        await executor.close()
        await runner.close()


async def test_a_job_of_a_dead_replica_runs_again_on_another_replica(
    harness: StoreHarness, tmp_path: Path
) -> None:
    dead_store = await harness.make()
    now = harness.clock.now()
    orphan = Job(id="orphan-of-a-dead-replica", type="segmentation", status=JobStatus.QUEUED, created_at=now)
    pid_file = tmp_path / "pid"
    payload = PickledJobInputs().encode(orphan.id, task_input(pid_then_sleep, str(pid_file), 0.0))
    await dead_store.create(orphan, payload=payload)
    await dead_store.start_job(orphan.id, owner="replica-that-died", now=now, lease_seconds=30)
    # The other replica: its own store instance (shared data for Redis and PostgreSQL).
    store = await harness.make() if harness.shared_between_instances else dead_store
    runner = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=2)
    await runner.start()
    executor = JobExecutor(
        store,
        runner,
        harness.clock,
        JobSettings(reaper_seconds=0.05, lease_seconds=30),
        DocumentPresenter(),
        PickledJobInputs(),
    )
    task_handlers(executor)
    await executor.start()
    try:
        await harness.clock.elapse(0.3)  # reaper passes while the lease still runs
        still = await store.get(orphan.id)
        assert still is not None and still.status is JobStatus.RUNNING, "a live lease must not be reaped"
        assert still.owner == "replica-that-died"
        harness.clock.advance(31)
        done = await _wait_for(harness, store, orphan.id, lambda j: j.status.is_final, timeout=30)
        assert (done.status, done.attempts, done.owner) == (JobStatus.COMPLETED, 2, executor.owner), (
            done.error
        )
        assert pid_file.exists()  # it ran here
    finally:
        await executor.close()
        await runner.close()


@pytest.mark.parametrize("phase", ["queued", "running"])
async def test_cancel_reaches_the_job_through_the_store(
    harness: StoreHarness, tmp_path: Path, phase: str
) -> None:
    """A cancel recorded by any replica (here: written to the store directly) stops the job."""
    store = await harness.make()
    runner = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=4)
    await runner.start()
    executor = JobExecutor(
        store,
        runner,
        harness.clock,
        JobSettings(heartbeat_seconds=0.1),
        DocumentPresenter(),
        PickledJobInputs(),
    )
    task_handlers(executor)
    await executor.start()
    try:
        blocker = await submit_task(executor, "segmentation", pid_then_sleep, str(tmp_path / "a"), 30.0)
        await _wait_for(harness, store, blocker.id, lambda j: j.status is JobStatus.RUNNING)
        target = blocker
        if phase == "queued":
            target = await submit_task(executor, "segmentation", pid_then_sleep, str(tmp_path / "b"), 30.0)
        started = time.monotonic()
        await store.finish(target.id, status=JobStatus.CANCELLED, now=harness.clock.now())
        if phase == "running":
            # The process is stopped: the pool takes the next task at once.
            follower = await submit_task(executor, "segmentation", pid_then_sleep, str(tmp_path / "c"), 0.0)
            await _wait_for(
                harness, store, follower.id, lambda j: j.status is JobStatus.COMPLETED, timeout=20
            )
            assert time.monotonic() - started < 15
        final = await store.get(target.id)
        assert final is not None and final.status is JobStatus.CANCELLED
    finally:
        await executor.close()
        await runner.close()
