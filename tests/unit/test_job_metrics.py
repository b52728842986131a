"""The job engine's metrics: the real PrometheusJobObserver on a registry of its own, heard from
JobExecutor over the in-memory store, the InlineRunner and a fake clock. Each final state moves its
own counter by exactly one, the queued and running gauges come back to zero whatever ended the
job, and durations are read on the engine's clock from the submission."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from adapters.compute.inline_runner import InlineRunner
from adapters.metrics.prometheus_jobs import PrometheusJobObserver
from application.job_executor import JobSettings
from domain.errors import InsufficientData
from domain.jobs import JobStatus
from support import tasks
from support.clock import FakeClock
from support.eventually import eventually
from support.jobs import Engine, started_engine
from support.stepper import Stepper

pytestmark = pytest.mark.timeout(60)

SETTINGS = JobSettings(lease_seconds=2.0, heartbeat_seconds=0.5, reaper_seconds=1.0)
TYPE = "segmentation"


class Scrape:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def value(self, name: str, **labels: str) -> float:
        """The sample's value, 0 when the series does not exist (yet)."""
        return self._registry.get_sample_value(name, {"type": TYPE, **labels}) or 0.0

    def finished(self, status: str, code: str = "") -> float:
        return self.value("ml_worker_jobs_finished_total", status=status, code=code)

    def finished_by_status(self) -> dict[str, float]:
        """Every finished count of the type, summed by status (over the error codes)."""
        counts: dict[str, float] = {}
        for family in self._registry.collect():
            for sample in family.samples:
                if sample.name == "ml_worker_jobs_finished_total" and sample.labels["type"] == TYPE:
                    status = sample.labels["status"]
                    counts[status] = counts.get(status, 0.0) + sample.value
        return counts

    def running(self) -> float:
        return self.value("ml_worker_jobs_running")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def scrape(registry: CollectorRegistry) -> Scrape:
    return Scrape(registry)


@pytest.fixture
def stepper() -> Iterator[Callable[..., Stepper]]:
    made: list[Stepper] = []

    def make(steps: int = 2) -> Stepper:
        made.append(Stepper(steps, {"value": 1}))
        return made[-1]

    yield make
    for task in made:
        task.release()


@pytest.fixture
async def engine(clock: FakeClock, registry: CollectorRegistry) -> AsyncIterator[Engine]:
    started = await started_engine(InlineRunner(), clock, SETTINGS, PrometheusJobObserver(registry))
    try:
        yield started
    finally:
        await started.executor.close()


async def test_a_job_that_succeeds_counts_once_as_completed_with_its_duration_from_submission(
    engine: Engine, clock: FakeClock, scrape: Scrape, stepper: Callable[..., Stepper]
) -> None:
    task = stepper()
    job = await engine.submit(TYPE, task)
    assert scrape.value("ml_worker_jobs_submitted_total") == 1
    await eventually(task.started.is_set, what="the task starting")
    await eventually(scrape.running, lambda g: g == 1, what="one job running, none queued")
    assert scrape.value("ml_worker_job_queue_wait_seconds_count") == 1
    await clock.elapse(7.0)  # heartbeats renew the lease meanwhile
    task.release()
    assert (await engine.final(job.id)).status is JobStatus.COMPLETED
    await eventually(lambda: scrape.finished("completed"), lambda n: n == 1, what="the completed count")
    assert scrape.finished_by_status() == {"completed": 1.0}
    assert scrape.running() == 0
    assert scrape.value("ml_worker_job_duration_seconds_count", status="completed") == 1
    assert scrape.value("ml_worker_job_duration_seconds_sum", status="completed") == pytest.approx(7.0)


async def test_a_job_that_fails_counts_once_under_its_error_code(engine: Engine, scrape: Scrape) -> None:
    job = await engine.submit(TYPE, tasks.job_raises, InsufficientData, "only 3 distinct rows")
    assert (await engine.final(job.id)).status is JobStatus.FAILED
    await eventually(lambda: scrape.finished("failed", "INSUFFICIENT_DATA"), lambda n: n == 1, what="count")
    crashed = await engine.submit(TYPE, tasks.crash)
    assert (await engine.final(crashed.id)).status is JobStatus.FAILED
    await eventually(lambda: scrape.finished("failed", "INTERNAL"), lambda n: n == 1, what="count")
    assert scrape.finished_by_status() == {"failed": 2.0}
    assert scrape.value("ml_worker_job_duration_seconds_count", status="failed") == 2
    assert scrape.running() == 0


async def test_a_job_cancelled_while_running_counts_once_as_cancelled(
    engine: Engine, scrape: Scrape, stepper: Callable[..., Stepper]
) -> None:
    task = stepper()
    job = await engine.submit(TYPE, task)
    await eventually(scrape.running, lambda g: g == 1, what="the job running")
    await engine.cancel.execute(job.id)
    task.go()  # it stops at its next report
    await eventually(lambda: scrape.finished("cancelled"), lambda n: n == 1, what="the cancelled count")
    assert scrape.finished_by_status() == {"cancelled": 1.0}
    assert scrape.running() == 0


async def test_a_job_cancelled_in_the_queue_counts_once_as_cancelled_and_never_as_running(
    clock: FakeClock, registry: CollectorRegistry, scrape: Scrape
) -> None:
    runner = InlineRunner()
    engine = await started_engine(runner, clock, SETTINGS, PrometheusJobObserver(registry))
    slot = runner.reserve()  # the one slot is taken: the job waits in the queue
    try:
        job = await engine.submit(TYPE, tasks.job_result, 1, 0.0)
        await clock.elapse(3.0)
        assert scrape.value("ml_worker_jobs_submitted_total") == 1
        assert scrape.value("ml_worker_jobs_claimed_total") == 0
        await engine.cancel.execute(job.id)
        assert scrape.finished_by_status() == {"cancelled": 1.0}
        assert scrape.running() == 0
        assert scrape.value("ml_worker_job_queue_wait_seconds_count") == 0  # it never started
        assert scrape.value("ml_worker_job_duration_seconds_sum", status="cancelled") == pytest.approx(3.0)
        slot.release()
        finished = await engine.submit(TYPE, tasks.job_result, 2, 0.0)
        assert (await engine.final(finished.id)).status is JobStatus.COMPLETED
        await eventually(lambda: scrape.finished("completed"), lambda n: n == 1, what="the completed count")
        assert scrape.finished_by_status() == {"cancelled": 1.0, "completed": 1.0}
        assert scrape.value("ml_worker_jobs_claimed_total") == 1
        assert scrape.running() == 0
    finally:
        await engine.executor.close()


async def test_a_job_stopped_by_shutdown_counts_as_requeued_not_finished(
    clock: FakeClock, registry: CollectorRegistry, scrape: Scrape, stepper: Callable[..., Stepper]
) -> None:
    engine = await started_engine(InlineRunner(), clock, SETTINGS, PrometheusJobObserver(registry))
    task = stepper()
    await engine.submit(TYPE, task)
    await eventually(scrape.running, lambda g: g == 1, what="the job running")
    await engine.executor.close()
    # Given back to the queue for another replica: not an outcome, and no longer running here.
    assert scrape.finished_by_status() == {}
    assert scrape.value("ml_worker_jobs_requeued_total", reason="shutdown") == 1
    assert scrape.running() == 0
    task.go()  # its thread stops at the next report, before the test's loop closes
    await eventually(task.ended.is_set, what="the task's thread ending")
