"""The job engine over real compute processes (ProcessPoolRunner) and the system clock: a crash, a
job in a worker process, cancels that stop the process, per-type timeouts, and shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from adapters.compute.process_pool import ProcessPoolRunner
from adapters.system_clock import SystemClock
from application.errors import Busy
from application.job_executor import JobSettings
from application.ports import PoolCapacity
from domain.jobs import JobStatus
from support import tasks
from support.eventually import eventually
from support.jobs import Engine, started_engine
from support.processes import alive

pytestmark = pytest.mark.timeout(60)

FAST = JobSettings(lease_seconds=2.0, heartbeat_seconds=0.05, reaper_seconds=0.05, default_timeout_seconds=60)


async def _engine(runner: ProcessPoolRunner, settings: JobSettings = FAST) -> Engine:
    return await started_engine(runner, SystemClock(), settings)


@pytest.fixture
async def pooled() -> AsyncIterator[Engine]:
    runner = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=2)
    await runner.start()
    engine = await _engine(runner)
    try:
        yield engine
    finally:
        await engine.executor.close()
        await runner.close()


async def _stopped(process_id: int, within: float) -> None:
    await eventually(lambda: not alive(process_id), timeout=within, what=f"process {process_id} stopping")


async def test_an_unexpected_crash_ends_failed_internal_with_a_generic_message(pooled: Engine) -> None:
    job = await pooled.submit("segmentation", tasks.crash)
    done = await pooled.final(job.id)
    assert done.status is JobStatus.FAILED and done.error is not None
    assert done.error.code == "INTERNAL"
    assert "boom" not in done.error.message  # details stay in the log


async def test_a_job_in_a_worker_process_completes(pooled: Engine) -> None:
    job = await pooled.submit("segmentation", tasks.job_result, 3, 0.3)
    done = await pooled.final(job.id)
    assert done.status is JobStatus.COMPLETED and done.result == {"value": 3, "squares": [9]}


async def test_cancel_of_a_queued_and_of_a_running_job(pooled: Engine) -> None:
    running = await pooled.submit("segmentation", tasks.announce_then_sleep, 30.0)
    started = await pooled.wait(running.id, lambda j: j.status is JobStatus.RUNNING and j.message.isdigit())
    worker_pid = int(started.message)
    queued = await pooled.submit("segmentation", tasks.job_result, 1, 0.1)
    assert (await pooled.job(queued.id)).status is JobStatus.QUEUED

    cancelled = await pooled.cancel.execute(queued.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at is not None

    cancelled_running = await pooled.cancel.execute(running.id)
    assert cancelled_running.status is JobStatus.CANCELLED
    await eventually(
        lambda: not alive(worker_pid) and not pooled.runner.capacity().busy,
        timeout=2.0,
        what="the running job's process stopping",
    )

    await asyncio.sleep(0.4)  # several heartbeats later, nothing has moved
    for job_id in (queued.id, running.id):
        job = await pooled.job(job_id)
        assert job.status is JobStatus.CANCELLED and job.error is None and job.result is None
    # The queued job never ran, and the pool is whole again.
    assert pooled.runner.capacity() == PoolCapacity(
        workers=1, threads_per_task=1, busy=0, queued=0, queue_limit=2
    )
    again = await pooled.submit("segmentation", tasks.job_result, 2, 0.1)
    assert (await pooled.final(again.id)).status is JobStatus.COMPLETED


async def test_a_cancel_made_through_the_store_reaches_the_job_by_heartbeat(pooled: Engine) -> None:
    """Another replica cancels in the shared store: this replica stops the job at its next heartbeat."""
    job = await pooled.submit("segmentation", tasks.announce_then_sleep, 30.0)
    started = await pooled.wait(job.id, lambda j: j.message.isdigit())
    await pooled.store.finish(job.id, status=JobStatus.CANCELLED, now=pooled.clock.now())
    await _stopped(int(started.message), within=2.0)
    assert (await pooled.job(job.id)).status is JobStatus.CANCELLED


async def test_a_job_type_timeout_ends_failed_timeout() -> None:
    runner = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=1)
    await runner.start()
    settings = JobSettings(
        lease_seconds=2.0, heartbeat_seconds=0.05, reaper_seconds=0.05, timeouts={"drift_analysis": 0.5}
    )
    engine = await _engine(runner, settings)
    try:
        t0 = time.monotonic()
        job = await engine.submit("drift_analysis", tasks.announce_then_sleep, 30.0)
        done = await engine.final(job.id, timeout=10)
        assert time.monotonic() - t0 < 3.0
        assert done.status is JobStatus.FAILED and done.error is not None
        assert done.error.code == "TIMEOUT"
        # Other types keep the default timeout.
        assert settings.timeout_for("segmentation") == settings.default_timeout_seconds
    finally:
        await engine.executor.close()
        await runner.close()


async def test_close_gives_running_and_queued_jobs_back_to_the_queue() -> None:
    runner = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=2)
    await runner.start()
    engine = await _engine(runner)
    try:
        running = await engine.submit("segmentation", tasks.announce_then_sleep, 30.0)
        started = await engine.wait(running.id, lambda j: j.message.isdigit())
        queued = await engine.submit("segmentation", tasks.job_result, 1, 0.1)
        t0 = time.monotonic()
        await engine.executor.close()
        assert time.monotonic() - t0 < 5.0
        for job_id in (running.id, queued.id):
            job = await engine.job(job_id)
            assert (job.status, job.attempts, job.owner, job.error) == (JobStatus.QUEUED, 0, None, None)
        assert not alive(int(started.message))  # the compute process stopped with it
    finally:
        await runner.close()


# ------------------------------------------------------------------------- a waiting training first


async def test_a_waiting_training_takes_the_next_slot_before_a_queued_job(pooled: Engine) -> None:
    runner = pooled.runner
    running = await pooled.submit("segmentation", tasks.announce_then_sleep, 1.0)
    await pooled.wait(running.id, lambda j: j.message.isdigit())
    queued = await pooled.submit("segmentation", tasks.job_result, 1, 0.0)
    # What TrainGbm does: a place in the line, then a wait for a worker bounded by the queue wait.
    training = asyncio.ensure_future(
        runner.run(tasks.pid, reservation=runner.reserve(), start_within=30.0, timeout=60.0)
    )
    await asyncio.sleep(0.3)
    assert (await pooled.job(queued.id)).status is JobStatus.QUEUED
    await training
    trained_at = time.time()
    done = await pooled.final(queued.id)
    assert done.status is JobStatus.COMPLETED
    assert done.started_at is not None and done.started_at >= trained_at - 0.05


async def test_a_training_that_finds_no_slot_within_its_wait_is_busy(pooled: Engine) -> None:
    runner = pooled.runner
    running = await pooled.submit("segmentation", tasks.announce_then_sleep, 30.0)
    await pooled.wait(running.id, lambda j: j.message.isdigit())
    started = time.monotonic()
    with pytest.raises(Busy):
        await runner.run(tasks.pid, reservation=runner.reserve(), start_within=0.5, timeout=60.0)
    assert 0.4 < time.monotonic() - started < 5.0
    assert runner.capacity().queued == 0  # its place given back
