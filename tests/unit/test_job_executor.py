"""The job engine in one process: JobExecutor over the real InMemoryJobStore with the InlineRunner
and a fake clock, so heartbeats, leases and the reaper run when the test moves time; GetJob,
CancelJob and the submit side of the analysis use cases. (With real compute processes:
tests/integration/test_job_executor_processes.py.)"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.compute.inline_runner import InlineRunner
from adapters.inline.dataset_source import InlineDatasetSource
from adapters.job_payload import PickledJobInputs
from application.analyze_content import AnalyzeContent
from application.analyze_policies import AnalyzePolicies
from application.errors import Busy
from application.job_executor import JobExecutor, JobSettings
from application.ports import QueueLimits
from application.segment_customers import SegmentCustomers
from domain.content import ContentSpec
from domain.data import InlineColumns
from domain.errors import InsufficientData, NotFound, ValidationFailed
from domain.jobs import Job, JobStatus, RequestEcho
from domain.policies import PolicySpec
from domain.segmentation import SegmentationSpec
from support import tasks
from support.clock import FakeClock, settle
from support.eventually import eventually
from support.jobs import CountingStore, Engine, HeldJobInputs, started_engine
from support.presenter import DocumentPresenter
from support.stepper import Stepper

pytestmark = pytest.mark.timeout(60)

HEARTBEAT = 0.5
SETTINGS = JobSettings(lease_seconds=2.0, heartbeat_seconds=HEARTBEAT, reaper_seconds=1.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stepper() -> Iterator[Callable[..., Stepper]]:
    """Makes Steppers, and lets every one of them end when the test does (no thread left behind)."""
    made: list[Stepper] = []

    def make(steps: int = 3, result: Any = None) -> Stepper:
        made.append(Stepper(steps, result))
        return made[-1]

    yield make
    for task in made:
        task.release()


@pytest.fixture
async def inline(clock: FakeClock) -> AsyncIterator[Engine]:
    engine = await started_engine(InlineRunner(queue_limit=4), clock, SETTINGS)
    try:
        yield engine
    finally:
        await engine.executor.close()


async def _reported(task: Stepper, reports: int) -> None:
    await eventually(lambda: task.reports >= reports, what=f"{reports} progress reports")


# ------------------------------------------------------------------------- lifecycle


async def test_a_job_goes_queued_running_completed_with_progress_from_each_heartbeat(
    inline: Engine, clock: FakeClock, stepper: Callable[..., Stepper]
) -> None:
    task = stepper(3, {"value": 7, "squares": [49]})
    submitted = await inline.submit("segmentation", task)
    assert submitted.status is JobStatus.QUEUED and submitted.progress == 0.0
    assert (submitted.owner, submitted.attempts) == (None, 0)  # in the queue, nobody's yet
    claimed = await inline.wait(submitted.id, lambda j: j.status is JobStatus.RUNNING)
    assert (claimed.progress, claimed.owner, claimed.attempts) == (0.0, inline.executor.owner, 1)

    stored_progress = []
    for report in range(1, 4):
        task.go()
        await _reported(task, report)
        await clock.elapse(HEARTBEAT)  # the heartbeat carries the last report to the store
        running = await inline.job(submitted.id)
        assert running.status is JobStatus.RUNNING
        stored_progress.append(running.progress)
    assert stored_progress == [0.25, 0.5, 0.75]

    task.go()  # and it returns
    job = await inline.final(submitted.id)
    assert job.status is JobStatus.COMPLETED
    assert job.result == {"value": 7, "squares": [49]}
    assert job.error is None and job.progress == 1.0
    assert job.started_at is not None and job.finished_at is not None
    assert job.created_at <= job.started_at <= job.finished_at
    assert inline.runner.capacity().queued == 0


async def test_a_task_raising_insufficient_data_ends_failed_with_that_code(inline: Engine) -> None:
    job = await inline.submit("segmentation", tasks.job_raises, InsufficientData, "only 3 distinct rows")
    done = await inline.final(job.id)
    assert done.status is JobStatus.FAILED
    assert done.error is not None
    assert (done.error.code, done.error.message) == ("INSUFFICIENT_DATA", "only 3 distinct rows")
    assert done.result is None


async def test_close_gives_a_running_job_back_to_the_queue_and_stops_its_thread(
    clock: FakeClock, stepper: Callable[..., Stepper]
) -> None:
    engine = await started_engine(InlineRunner(), clock, SETTINGS)
    task = stepper(3)
    job = await engine.submit("segmentation", task)
    await engine.wait(job.id, lambda j: j.status is JobStatus.RUNNING)
    await engine.executor.close()
    back = await engine.job(job.id)
    # A deploy is not the job's failure: queued again for another replica, the attempt not counted.
    assert (back.status, back.attempts, back.owner, back.error) == (JobStatus.QUEUED, 0, None, None)
    task.go()
    await eventually(task.ended.is_set, what="the task's thread ending")
    assert task.reports == 0, "the task's thread ran on after close()"


# ------------------------------------------------------------------------- leases and the reaper


async def test_the_reaper_queues_a_dead_replicas_job_again_and_fails_it_after_its_last_attempt(
    clock: FakeClock,
) -> None:
    store = CountingStore(clock)
    now = clock.now()
    for job_id, attempts in (("first-attempt", 1), ("last-attempt", 2), ("alive-elsewhere", 1)):
        await store.create(Job(id=job_id, type="segmentation", status=JobStatus.QUEUED, created_at=now - 100))
        for attempt in range(attempts):
            if attempt:
                await store.requeue(job_id, owner="replica-dead", refund_attempt=False)
            owner = "replica-other" if job_id == "alive-elsewhere" else "replica-dead"
            lease = 3600 if job_id == "alive-elsewhere" else 5
            await store.start_job(job_id, owner=owner, now=now - 90, lease_seconds=lease)
    # This replica's one slot is taken, so what the reaper queues stays queued.
    runner = InlineRunner()
    runner.reserve()
    executor = JobExecutor(store, runner, clock, SETTINGS, DocumentPresenter(), HeldJobInputs())
    await executor.start()
    await settle()  # its first reaper pass
    try:
        # A replica trusts an expired lease only once it has reached the store for a whole lease
        # itself (it cannot know whether the store was just down, with every renewal).
        await clock.elapse(SETTINGS.lease_seconds - SETTINGS.reaper_seconds)
        assert (await store.get("first-attempt")).status is JobStatus.RUNNING  # type: ignore[union-attr]
        await clock.elapse(SETTINGS.reaper_seconds)
        again = await store.get("first-attempt")
        assert again is not None and (again.status, again.attempts, again.owner) == (
            JobStatus.QUEUED,
            1,
            None,
        )
        lost = await store.get("last-attempt")
        assert lost is not None and lost.status is JobStatus.FAILED and lost.error is not None
        assert (lost.error.code, lost.attempts) == ("WORKER_LOST", 2)
        other = await store.get("alive-elsewhere")
        assert other is not None and other.status is JobStatus.RUNNING
        # Once the other replica stops renewing, its lease runs out too.
        clock.advance(3600)
        await clock.elapse(SETTINGS.reaper_seconds)
        other = await store.get("alive-elsewhere")
        assert other is not None and (other.status, other.attempts) == (JobStatus.QUEUED, 1)
    finally:
        await executor.close()


async def test_heartbeats_keep_a_job_longer_than_its_lease_alive(
    inline: Engine, clock: FakeClock, stepper: Callable[..., Stepper]
) -> None:
    task = stepper(1, {"value": 5})
    job = await inline.submit("segmentation", task)
    await inline.wait(job.id, lambda j: j.status is JobStatus.RUNNING)
    await clock.elapse(3 * SETTINGS.lease_seconds)  # reaper passes included
    assert (await inline.job(job.id)).status is JobStatus.RUNNING
    task.release()
    done = await inline.final(job.id)
    assert done.status is JobStatus.COMPLETED, done.error


# ------------------------------------------------------------------------- GetJob, CancelJob


async def test_get_unknown_job_is_not_found(inline: Engine) -> None:
    with pytest.raises(NotFound) as caught:
        await inline.get.execute("nope")
    assert "nope" in caught.value.message


async def test_cancel_unknown_job_is_not_found(inline: Engine) -> None:
    with pytest.raises(NotFound):
        await inline.cancel.execute("nope")


async def test_cancel_is_idempotent_on_finished_jobs(
    inline: Engine, clock: FakeClock, stepper: Callable[..., Stepper]
) -> None:
    job = await inline.submit("segmentation", tasks.job_result, 4, 0.0)
    completed = await inline.final(job.id)
    assert completed.status is JobStatus.COMPLETED
    assert await inline.cancel.execute(job.id) == completed  # unchanged

    task = stepper(3)
    pending = await inline.submit("segmentation", task)
    first = await inline.cancel.execute(pending.id)
    second = await inline.cancel.execute(pending.id)
    assert first.status is second.status is JobStatus.CANCELLED
    assert first.finished_at == second.finished_at
    task.release()  # had it started, it stops at its next report
    await eventually(lambda: inline.runner.capacity().queued == 0, what="the cancelled job letting go")
    assert task.reports == 0
    await clock.elapse(4 * HEARTBEAT)  # heartbeats and reaper passes later, nothing has moved
    assert await inline.job(pending.id) == first


async def test_submit_answers_busy_when_the_queue_is_full_and_creates_no_job(
    clock: FakeClock, stepper: Callable[..., Stepper]
) -> None:
    settings = JobSettings(
        lease_seconds=2.0,
        heartbeat_seconds=HEARTBEAT,
        reaper_seconds=1.0,
        limits=QueueLimits(max_queued_jobs=1),
    )
    engine = await started_engine(InlineRunner(queue_limit=1), clock, settings)
    try:
        task = stepper(3)
        running = await engine.submit("segmentation", task)
        await engine.wait(running.id, lambda j: j.status is JobStatus.RUNNING)
        waiting = await engine.submit("segmentation", tasks.job_result, 1, 0.0)  # the one queue place
        with pytest.raises(Busy):
            await engine.submit("segmentation", tasks.job_result, 1, 0.0)
        with pytest.raises(Busy):
            await engine.executor.check_room()
        assert engine.store.created == [running.id, waiting.id]
        task.go()
        task.release()
        assert (await engine.final(running.id)).status is JobStatus.COMPLETED
        assert (await engine.final(waiting.id)).status is JobStatus.COMPLETED
        job = await engine.submit("segmentation", tasks.job_result, 1, 0.0)
        assert (await engine.final(job.id)).status is JobStatus.COMPLETED
    finally:
        await engine.executor.close()


async def test_jobs_run_oldest_first_one_per_free_slot(
    inline: Engine, stepper: Callable[..., Stepper]
) -> None:
    blocker = stepper(1)
    first = await inline.submit("segmentation", blocker)
    await inline.wait(first.id, lambda j: j.status is JobStatus.RUNNING)
    later = [await inline.submit("segmentation", tasks.job_result, n, 0.0) for n in range(3)]
    await asyncio.sleep(0.3)  # the inline runner has one slot: the rest wait
    assert [(await inline.job(j.id)).status for j in later] == [JobStatus.QUEUED] * 3
    blocker.release()
    done = [await inline.final(j.id) for j in later]
    assert [j.status for j in done] == [JobStatus.COMPLETED] * 3
    started = [j.started_at for j in done]
    assert started == sorted(started)  # type: ignore[type-var]


# ------------------------------------------------------------------------- analysis use cases (submit side)


class FakeSegmenter:
    """A Segmenter that returns a fixed result naming what it was given."""

    def segment(self, dataset: Any, spec: Any, progress: Callable[..., None]) -> dict[str, Any]:
        progress(0.5, "segmenting")
        return {"algorithm": spec.algorithm, "k": spec.min_clusters, "rowCount": dataset.row_count}


class _NeverCalled:
    def analyze(self, *args: object) -> dict[str, object]:
        raise AssertionError("must not run")


def _segment(engine: Engine) -> SegmentCustomers:
    use_case = SegmentCustomers(
        InlineDatasetSource(), engine.executor, engine.runner, FakeSegmenter(), 1000, 60
    )
    engine.executor.register(use_case)
    return use_case


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
    assert inline.runner.capacity().queued == 0


async def test_policy_and_content_requests_naming_missing_columns_fail_before_any_job(inline: Engine) -> None:
    data = InlineColumns({"a": [1.0, 2.0, 3.0]})
    policies = AnalyzePolicies(InlineDatasetSource(), inline.executor, inline.runner, _NeverCalled(), 100, 60)
    with pytest.raises(ValidationFailed) as caught:
        await policies.submit(data, PolicySpec(), {})
    # Spec paths: the route spells them as the request does (fieldMap.customerId, ...).
    roles = {"customer_id", "channel", "timestamp", "interaction_type"}
    assert roles <= {d["field"] for d in caught.value.details}
    content = AnalyzeContent(InlineDatasetSource(), inline.executor, inline.runner, _NeverCalled(), 100, 60)
    with pytest.raises(ValidationFailed) as caught:
        await content.submit(data, ContentSpec(), {})
    assert "impressions" in {d["field"] for d in caught.value.details}
    assert inline.store.created == []


# ------------------------------------------------------------------------- inputs in the payload dir


def _files(directory: Path) -> list[str]:
    return [path.name for path in directory.iterdir()]


async def test_a_large_input_in_the_payload_dir_goes_when_its_job_ends_on_any_replica(
    clock: FakeClock, tmp_path: Path
) -> None:
    codec = PickledJobInputs(inline_bytes=0, directory=tmp_path)
    runner = InlineRunner()
    engine = await started_engine(runner, clock, SETTINGS, codec=codec)
    try:
        done = await engine.submit("segmentation", tasks.job_result, 2, 0.0)
        assert (await engine.final(done.id)).status is JobStatus.COMPLETED
        assert not _files(tmp_path)  # removed by the replica that finished it
        slot = runner.reserve()  # nothing is claimed now
        waiting = await engine.submit("segmentation", tasks.job_result, 3, 0.0)
        assert _files(tmp_path) == [f"job-{waiting.id}.input"]
        # Cancelled in the queue (through any replica): no run removes it; the reaper's sweep does,
        # once the file is old enough not to belong to a job being stored right now.
        await engine.cancel.execute(waiting.id)
        await clock.elapse(SETTINGS.reaper_seconds)
        assert _files(tmp_path) == [f"job-{waiting.id}.input"]
        an_hour_ago = time.time() - 3600
        os.utime(tmp_path / f"job-{waiting.id}.input", (an_hour_ago, an_hour_ago))

        async def swept() -> bool:
            await clock.elapse(SETTINGS.reaper_seconds)  # a reaper pass (its sweep runs in a thread)
            return not _files(tmp_path)

        await eventually(swept, what="the sweep removing the file")
        slot.release()
    finally:
        await engine.executor.close()
