"""The job engine: JobExecutor over the real InMemoryJobStore, with the InlineRunner and with real
ProcessPoolRunner workers; GetJob, CancelJob and the submit side of the analysis use cases."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import foundation_support as fs
import pytest

from adapters.compute.inline_runner import InlineRunner
from adapters.compute.process_pool import ProcessPoolRunner
from adapters.inline.dataset_source import InlineDatasetSource
from adapters.memory.job_store import InMemoryJobStore
from adapters.system_clock import SystemClock
from application.analyze_content import AnalyzeContent
from application.analyze_policies import AnalyzePolicies
from application.cancel_job import CancelJob
from application.errors import Busy
from application.get_job import GetJob
from application.job_executor import JobExecutor, JobSettings
from application.ports import ComputeRunner
from application.segment_customers import SegmentCustomers
from domain.content import ContentSpec
from domain.data import InlineColumns
from domain.errors import InsufficientData, NotFound, ValidationFailed
from domain.jobs import Job, JobStatus, RequestEcho
from domain.policies import PolicySpec
from domain.segmentation import SegmentationSpec
from entrypoints.presenters.jobs import JobResultPresenter

pytestmark = pytest.mark.timeout(60)

FAST = JobSettings(lease_seconds=2.0, heartbeat_seconds=0.05, reaper_seconds=0.05, default_timeout_seconds=60)


class CountingStore(InMemoryJobStore):
    """The real in-memory store, counting the jobs created through it."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[str] = []

    async def create(self, job: Job) -> None:
        await super().create(job)
        self.created.append(job.id)


@dataclass
class Engine:
    store: CountingStore
    runner: ComputeRunner
    executor: JobExecutor
    get: GetJob
    cancel: CancelJob

    async def job(self, job_id: str) -> Job:
        return await self.get.execute(job_id)

    async def wait(self, job_id: str, predicate: Callable[[Job], bool], timeout: float = 10.0) -> Job:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.job(job_id)
            if predicate(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"job {job_id} still {job.status.value} ({job.message!r}) after {timeout} s"
                )
            await asyncio.sleep(0.01)

    async def final(self, job_id: str, timeout: float = 10.0) -> Job:
        return await self.wait(job_id, lambda j: j.status.is_final, timeout)


async def _engine(runner: ComputeRunner, settings: JobSettings = FAST) -> Engine:
    store = CountingStore()
    clock = SystemClock()
    executor = JobExecutor(store, runner, clock, settings, JobResultPresenter())
    await executor.start()
    return Engine(store, runner, executor, GetJob(store), CancelJob(store, executor, clock))


@pytest.fixture
async def inline() -> AsyncIterator[Engine]:
    engine = await _engine(InlineRunner(queue_limit=4))
    try:
        yield engine
    finally:
        await engine.executor.close()


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


def _alive(process_id: int) -> bool:
    try:
        with open(f"/proc/{process_id}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ------------------------------------------------------------------------- lifecycle


async def test_a_job_goes_queued_running_completed_with_rising_progress(inline: Engine) -> None:
    submitted = await inline.executor.submit("segmentation", fs.job_result, 7, 0.9)
    assert submitted.status is JobStatus.QUEUED and submitted.progress == 0.0
    assert submitted.owner == inline.executor.owner
    statuses: list[JobStatus] = []
    progress_while_running: list[float] = []
    while True:
        job = await inline.job(submitted.id)
        if not statuses or statuses[-1] is not job.status:
            statuses.append(job.status)
        if job.status is JobStatus.RUNNING:
            progress_while_running.append(job.progress)
        if job.status.is_final:
            break
        await asyncio.sleep(0.01)
    assert statuses in (
        [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.COMPLETED],
        [JobStatus.RUNNING, JobStatus.COMPLETED],
    )
    assert job.result == {"value": 7, "squares": [49]}
    assert job.error is None and job.progress == 1.0
    assert job.started_at is not None and job.finished_at is not None
    assert job.created_at <= job.started_at <= job.finished_at
    assert progress_while_running == sorted(progress_while_running)
    assert len({p for p in progress_while_running if 0 < p < 1}) >= 2, progress_while_running
    assert inline.runner.capacity()["queued"] == 0


async def test_a_task_raising_insufficient_data_ends_failed_with_that_code(inline: Engine) -> None:
    job = await inline.executor.submit(
        "segmentation", fs.job_raises, InsufficientData, "only 3 distinct rows"
    )
    done = await inline.final(job.id)
    assert done.status is JobStatus.FAILED
    assert done.error is not None
    assert (done.error.code, done.error.message) == ("INSUFFICIENT_DATA", "only 3 distinct rows")
    assert done.result is None


async def test_an_unexpected_crash_ends_failed_internal_with_a_generic_message(pooled: Engine) -> None:
    job = await pooled.executor.submit("segmentation", fs.crash)
    done = await pooled.final(job.id)
    assert done.status is JobStatus.FAILED and done.error is not None
    assert done.error.code == "INTERNAL"
    assert "boom" not in done.error.message  # details stay in the log


async def test_a_job_in_a_worker_process_completes(pooled: Engine) -> None:
    job = await pooled.executor.submit("segmentation", fs.job_result, 3, 0.3)
    done = await pooled.final(job.id)
    assert done.status is JobStatus.COMPLETED and done.result == {"value": 3, "squares": [9]}


async def test_cancel_of_a_queued_and_of_a_running_job(pooled: Engine) -> None:
    running = await pooled.executor.submit("segmentation", fs.announce_then_sleep, 30.0)
    started = await pooled.wait(running.id, lambda j: j.status is JobStatus.RUNNING and j.message.isdigit())
    worker_pid = int(started.message)
    queued = await pooled.executor.submit("segmentation", fs.job_result, 1, 0.1)
    assert (await pooled.job(queued.id)).status is JobStatus.QUEUED

    cancelled = await pooled.cancel.execute(queued.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at is not None

    t0 = time.monotonic()
    cancelled_running = await pooled.cancel.execute(running.id)
    assert cancelled_running.status is JobStatus.CANCELLED
    while _alive(worker_pid) or pooled.runner.capacity()["busy"]:
        assert time.monotonic() - t0 < 2.0, "the running job's process was not stopped within 2 s"
        await asyncio.sleep(0.02)

    await asyncio.sleep(0.4)  # several heartbeats later, nothing has moved
    for job_id in (queued.id, running.id):
        job = await pooled.job(job_id)
        assert job.status is JobStatus.CANCELLED and job.error is None and job.result is None
    # The queued job never ran, and the pool is whole again.
    assert pooled.runner.capacity() == {
        "workers": 1,
        "threadsPerTask": 1,
        "busy": 0,
        "queued": 0,
        "queueLimit": 2,
    }
    again = await pooled.executor.submit("segmentation", fs.job_result, 2, 0.1)
    assert (await pooled.final(again.id)).status is JobStatus.COMPLETED


async def test_a_cancel_made_through_the_store_reaches_the_job_by_heartbeat(pooled: Engine) -> None:
    """Another replica cancels in the shared store: this replica stops the job at its next heartbeat."""
    job = await pooled.executor.submit("segmentation", fs.announce_then_sleep, 30.0)
    started = await pooled.wait(job.id, lambda j: j.message.isdigit())
    await pooled.store.finish(job.id, status=JobStatus.CANCELLED, now=time.time())
    t0 = time.monotonic()
    while _alive(int(started.message)):
        assert time.monotonic() - t0 < 2.0
        await asyncio.sleep(0.02)
    assert (await pooled.job(job.id)).status is JobStatus.CANCELLED


async def test_a_job_type_timeout_ends_failed_timeout() -> None:
    runner = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=1)
    await runner.start()
    settings = JobSettings(
        lease_seconds=2.0, heartbeat_seconds=0.05, reaper_seconds=0.05, timeouts={"slow": 0.5}
    )
    engine = await _engine(runner, settings)
    try:
        t0 = time.monotonic()
        job = await engine.executor.submit("slow", fs.announce_then_sleep, 30.0)
        done = await engine.final(job.id, timeout=10)
        assert time.monotonic() - t0 < 3.0
        assert done.status is JobStatus.FAILED and done.error is not None
        assert done.error.code == "TIMEOUT"
        # Other types keep the default timeout.
        assert settings.timeout_for("segmentation") == settings.default_timeout_seconds
    finally:
        await engine.executor.close()
        await runner.close()


async def test_close_marks_running_and_queued_jobs_failed_shutdown() -> None:
    runner = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=2)
    await runner.start()
    engine = await _engine(runner)
    try:
        running = await engine.executor.submit("segmentation", fs.announce_then_sleep, 30.0)
        started = await engine.wait(running.id, lambda j: j.message.isdigit())
        queued = await engine.executor.submit("segmentation", fs.job_result, 1, 0.1)
        t0 = time.monotonic()
        await engine.executor.close()
        assert time.monotonic() - t0 < 5.0
        for job_id in (running.id, queued.id):
            job = await engine.job(job_id)
            assert job.status is JobStatus.FAILED and job.error is not None
            assert job.error.code == "SHUTDOWN"
        assert not _alive(int(started.message))
    finally:
        await runner.close()


async def test_close_with_the_inline_runner_fails_the_job_and_stops_its_thread() -> None:
    engine = await _engine(InlineRunner())
    stopped: list[str] = []
    job = await engine.executor.submit("segmentation", fs.report_until_stopped, stopped)
    await engine.wait(job.id, lambda j: j.status is JobStatus.RUNNING)
    await engine.executor.close()
    done = await engine.job(job.id)
    assert done.status is JobStatus.FAILED and done.error is not None and done.error.code == "SHUTDOWN"
    deadline = time.monotonic() + 2
    while stopped != ["stopped"]:
        assert time.monotonic() < deadline, "the task's thread ran on after close()"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------------- leases and the reaper


async def test_the_reaper_fails_jobs_of_a_dead_replica_with_worker_lost() -> None:
    store = CountingStore()
    now = time.time()
    for job_id, start in (("dead-running", True), ("dead-queued", False)):
        await store.create(
            Job(
                id=job_id,
                type="segmentation",
                status=JobStatus.QUEUED,
                created_at=now - 100,
                owner="replica-dead",
                lease_expires_at=now - 60,
            )
        )
        if start:
            await store.start_job(job_id, owner="replica-dead", now=now - 90, lease_seconds=5)
    await store.create(
        Job(
            id="alive-elsewhere",
            type="segmentation",
            status=JobStatus.QUEUED,
            created_at=now,
            owner="replica-other",
            lease_expires_at=now + 3600,
        )
    )
    executor = JobExecutor(store, InlineRunner(), SystemClock(), FAST, JobResultPresenter())
    await executor.start()
    try:
        deadline = time.monotonic() + 5
        while (await store.get("dead-running")).status is JobStatus.RUNNING:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        for job_id in ("dead-running", "dead-queued"):
            job = await store.get(job_id)
            assert job is not None and job.status is JobStatus.FAILED and job.error is not None
            assert job.error.code == "WORKER_LOST"
        other = await store.get("alive-elsewhere")
        assert other is not None and other.status is JobStatus.QUEUED
    finally:
        await executor.close()


async def test_heartbeats_keep_a_job_longer_than_its_lease_alive() -> None:
    settings = JobSettings(lease_seconds=0.6, heartbeat_seconds=0.05, reaper_seconds=0.05)
    engine = await _engine(InlineRunner(), settings)
    try:
        job = await engine.executor.submit("segmentation", fs.job_result, 5, 1.8)  # three leases long
        done = await engine.final(job.id)
        assert done.status is JobStatus.COMPLETED, done.error
    finally:
        await engine.executor.close()


# ------------------------------------------------------------------------- GetJob, CancelJob


async def test_get_unknown_job_is_not_found(inline: Engine) -> None:
    with pytest.raises(NotFound) as caught:
        await inline.get.execute("nope")
    assert "nope" in caught.value.message


async def test_cancel_unknown_job_is_not_found(inline: Engine) -> None:
    with pytest.raises(NotFound):
        await inline.cancel.execute("nope")


async def test_cancel_is_idempotent_on_finished_jobs(inline: Engine) -> None:
    job = await inline.executor.submit("segmentation", fs.job_result, 4, 0.05)
    completed = await inline.final(job.id)
    assert completed.status is JobStatus.COMPLETED
    assert await inline.cancel.execute(job.id) == completed  # unchanged

    pending = await inline.executor.submit("segmentation", fs.sleep_reporting, 30.0, 0.02)
    first = await inline.cancel.execute(pending.id)
    second = await inline.cancel.execute(pending.id)
    assert first.status is second.status is JobStatus.CANCELLED
    assert first.finished_at == second.finished_at
    await asyncio.sleep(0.2)
    assert (await inline.job(pending.id)).status is JobStatus.CANCELLED


async def test_submit_answers_busy_when_the_queue_is_full_and_creates_no_job() -> None:
    engine = await _engine(InlineRunner(queue_limit=1))
    try:
        blocker = await engine.executor.submit("segmentation", fs.sleep_reporting, 30.0, 0.02)
        with pytest.raises(Busy):
            await engine.executor.submit("segmentation", fs.job_result, 1, 0.01)
        assert engine.store.created == [blocker.id]
        await engine.cancel.execute(blocker.id)
        # The place comes back once the cancelled task has stopped.
        deadline = time.monotonic() + 5
        while engine.runner.capacity()["queued"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        job = await engine.executor.submit("segmentation", fs.job_result, 1, 0.01)
        assert (await engine.final(job.id)).status is JobStatus.COMPLETED
    finally:
        await engine.executor.close()


# ------------------------------------------------------------------------- analysis use cases (submit side)


def _segment(engine: Engine) -> SegmentCustomers:
    segmenter = fs.FakeSegmenter()
    return SegmentCustomers(InlineDatasetSource(), engine.executor, engine.runner, segmenter, 1000, 60)


async def test_segment_customers_queues_a_job_whose_result_echoes_the_ids(inline: Engine) -> None:
    data = InlineColumns({"a": [float(i) for i in range(30)], "b": [float(i % 7) for i in range(30)]})
    job = await _segment(inline).submit(
        data, SegmentationSpec(min_clusters=3, max_clusters=5), RequestEcho(schema_id="s1")
    )
    assert job.type == "segmentation" and job.status is JobStatus.QUEUED
    done = await inline.final(job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"algorithm": "kmeans", "k": 3, "rowCount": 30, "schemaId": "s1"}


async def test_bad_segmentation_requests_fail_before_any_job_exists(inline: Engine) -> None:
    use_case = _segment(inline)
    data = InlineColumns({"a": [1.0, 2.0, 3.0, 4.0], "label": ["x", "y", "x", "y"]})
    with pytest.raises(ValidationFailed) as caught:
        await use_case.submit(data, SegmentationSpec(fields=("a", "ghost")), {})
    assert any("ghost" in str(d) for d in caught.value.details)
    with pytest.raises(ValidationFailed) as caught:
        await use_case.submit(data, SegmentationSpec(min_clusters=6, max_clusters=3), {})
    with pytest.raises(InsufficientData):
        await use_case.submit(InlineColumns({"a": [1.0, 2.0]}), SegmentationSpec(), {})
    assert inline.store.created == []
    assert inline.runner.capacity()["queued"] == 0


async def test_policy_and_content_requests_naming_missing_columns_fail_before_any_job(inline: Engine) -> None:
    data = InlineColumns({"a": [1.0, 2.0, 3.0]})
    policies = AnalyzePolicies(InlineDatasetSource(), inline.executor, inline.runner, _NeverCalled(), 100, 60)
    with pytest.raises(ValidationFailed) as caught:
        await policies.submit(data, PolicySpec(), {})
    assert {"fieldMap.customerId", "fieldMap.channel", "fieldMap.timestamp", "fieldMap.interactionType"} <= {
        d["field"] for d in caught.value.details
    }
    content = AnalyzeContent(InlineDatasetSource(), inline.executor, inline.runner, _NeverCalled(), 100, 60)
    with pytest.raises(ValidationFailed) as caught:
        await content.submit(data, ContentSpec(), {})
    assert "impressions" in {d["field"] for d in caught.value.details}
    assert inline.store.created == []


class _NeverCalled:
    def analyze(self, *args: object) -> dict[str, object]:
        raise AssertionError("must not run")


def test_the_liveness_helper_tells_live_from_dead_processes() -> None:
    """The cancel tests rely on _alive(); a helper that always said False would make them vacuous."""
    assert _alive(os.getpid())
    child = subprocess.Popen(["sleep", "0"])
    child.wait()
    assert not _alive(child.pid)
