"""The job engine through a job store outage, in one process: the real InMemoryJobStore behind a
switch that makes every call fail as an unreachable server does (or run the call and lose its reply),
the InlineRunner and a fake clock. The same rules over real Redis and PostgreSQL behind a TCP proxy:
tests/integration/test_store_outages.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from adapters.compute.inline_runner import InlineRunner
from adapters.memory.job_store import InMemoryJobStore
from application.errors import DependencyUnavailable
from application.get_job import GetJob
from application.job_executor import JobExecutor, JobSettings
from application.ports import Claim, QueueDepth
from domain.jobs import Job, JobStatus
from support.clock import FakeClock, settle
from support.eventually import eventually
from support.jobs import HeldJobInputs, submit_task, task_handlers
from support.presenter import DocumentPresenter
from support.stepper import Stepper

pytestmark = pytest.mark.timeout(60)

SETTINGS = JobSettings(lease_seconds=30.0, heartbeat_seconds=0.5, reaper_seconds=10.0, unwritten_limit=1)


class SwitchedStore(InMemoryJobStore):
    """The real in-memory store, unreachable while `down`; `lose_reply` names calls that are made
    once and then reported as failed (a reply lost on the way back). Counts every call."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.down = False
        self.lose_reply: set[str] = set()
        self.calls = 0
        self.calls_to: dict[str, int] = {}

    async def _gate(self, name: str, call: Callable[[], Any]) -> Any:
        self.calls += 1
        self.calls_to[name] = self.calls_to.get(name, 0) + 1
        if self.down:
            raise DependencyUnavailable("the job store is unreachable (test)")
        result = await call()
        if name in self.lose_reply:
            self.lose_reply.discard(name)
            raise DependencyUnavailable("the reply was lost (test)")
        return result

    async def check(self) -> str | None:
        self.calls += 1
        return "the job store is unreachable (test)" if self.down else None

    async def create(self, job: Job, **kwargs: Any) -> Job:
        created: Job = await self._gate("create", lambda: InMemoryJobStore.create(self, job, **kwargs))
        return created

    async def claim_next(self, **kwargs: Any) -> Claim | None:
        claim: Claim | None = await self._gate(
            "claim_next", lambda: InMemoryJobStore.claim_next(self, **kwargs)
        )
        return claim

    async def queue_depth(self) -> QueueDepth:
        depth: QueueDepth = await self._gate("queue_depth", lambda: InMemoryJobStore.queue_depth(self))
        return depth

    async def get(self, job_id: str) -> Job | None:
        job: Job | None = await self._gate("get", lambda: InMemoryJobStore.get(self, job_id))
        return job

    async def start_job(self, job_id: str, **kwargs: Any) -> Job:
        job: Job = await self._gate("start_job", lambda: InMemoryJobStore.start_job(self, job_id, **kwargs))
        return job

    async def heartbeat(self, job_id: str, **kwargs: Any) -> Job:
        job: Job = await self._gate("heartbeat", lambda: InMemoryJobStore.heartbeat(self, job_id, **kwargs))
        return job

    async def finish(self, job_id: str, **kwargs: Any) -> Job:
        job: Job = await self._gate("finish", lambda: InMemoryJobStore.finish(self, job_id, **kwargs))
        return job

    async def reap_expired_leases(self, *, now: float, max_attempts: int = 1) -> list[Job]:
        jobs: list[Job] = await self._gate(
            "reap", lambda: InMemoryJobStore.reap_expired_leases(self, now=now, max_attempts=max_attempts)
        )
        return jobs

    async def purge_expired(self, *, now: float) -> int:
        count: int = await self._gate("purge", lambda: InMemoryJobStore.purge_expired(self, now=now))
        return count


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> SwitchedStore:
    return SwitchedStore(clock)


@pytest.fixture
async def executor(store: SwitchedStore, clock: FakeClock) -> AsyncIterator[JobExecutor]:
    engine = task_handlers(
        JobExecutor(
            store, InlineRunner(queue_limit=8, slots=8), clock, SETTINGS, DocumentPresenter(), HeldJobInputs()
        )
    )
    await engine.start()
    try:
        yield engine
    finally:
        store.down = False
        await engine.close()


@pytest.fixture
def stepper() -> Iterator[Callable[..., Stepper]]:
    made: list[Stepper] = []

    def make(result: Any) -> Stepper:
        made.append(Stepper(0, result))
        return made[-1]

    yield make
    for task in made:
        task.release()


async def _stored(store: SwitchedStore, job_id: str, until: Callable[[Job], bool]) -> Job:
    async def look() -> Job | None:
        return await InMemoryJobStore.get(store, job_id)

    found: Job = await eventually(look, lambda j: j is not None and until(j), what=f"job {job_id}")
    return found


async def test_results_finished_during_an_outage_are_written_when_it_ends_and_past_the_bound_noted(
    store: SwitchedStore, executor: JobExecutor, clock: FakeClock, stepper: Callable[..., Stepper]
) -> None:
    first, second = stepper({"value": 1}), stepper({"value": 2})
    kept = await submit_task(executor, "segmentation", first)
    noted = await submit_task(executor, "segmentation", second)
    for job in (kept, noted):
        await _stored(store, job.id, lambda j: j.status is JobStatus.RUNNING)
    store.down = True
    first.release()
    await eventually(lambda: executor.unwritten == 1, what="the first outcome held")
    second.release()
    await eventually(lambda: executor.unwritten == 2, what="the second outcome held")
    await clock.elapse(120)  # four lease lengths of outage, heartbeats and reaper passes included
    store.down = False
    await clock.elapse(SETTINGS.longest_retry_seconds)

    done = await _stored(store, kept.id, lambda j: j.status.is_final)
    assert (done.status, done.result) == (JobStatus.COMPLETED, {"value": 1})
    # Past the bound of one held result: the job is recorded as failed, saying why, not lost.
    failed = await _stored(store, noted.id, lambda j: j.status.is_final)
    assert failed.status is JobStatus.FAILED and failed.error is not None
    assert failed.error.code == "DEPENDENCY_UNAVAILABLE" and "submit it again" in failed.error.message
    # Each when it finished, not when the store took it.
    assert done.finished_at is not None and done.finished_at < clock.now() - 100
    assert executor.unwritten == 0


async def test_a_dead_store_is_asked_once_per_round_at_a_growing_interval(
    store: SwitchedStore, executor: JobExecutor, clock: FakeClock, stepper: Callable[..., Stepper]
) -> None:
    tasks = [stepper({"value": i}) for i in range(4)]
    for task in tasks:
        await submit_task(executor, "segmentation", task)
    await clock.elapse(1)
    store.down = True
    before = store.calls_to.get("heartbeat", 0)
    await clock.elapse(60)
    # Without backoff: 120 rounds of 4 heartbeats. With it: 1, 2, 4, then every 5 s, one call a round.
    heartbeat_rounds = store.calls_to["heartbeat"] - before
    assert 0 < heartbeat_rounds <= 16
    before = store.calls
    store.down = False
    await clock.elapse(SETTINGS.longest_retry_seconds)
    for task in tasks:
        task.release()
    await eventually(lambda: not executor.unwritten and store.calls > before, what="the jobs written")


@pytest.mark.parametrize("lost", ["create", "finish"])
async def test_a_transition_whose_reply_was_lost_is_not_taken_for_a_cancel(
    store: SwitchedStore, executor: JobExecutor, clock: FakeClock, stepper: Callable[..., Stepper], lost: str
) -> None:
    task = stepper({"value": 3})
    store.lose_reply.add(lost)
    if lost == "create":
        # The submitter hears DEPENDENCY_UNAVAILABLE; the job is queued all the same, and runs.
        with pytest.raises(DependencyUnavailable):
            await submit_task(executor, "segmentation", task)
        [entry] = store._entries.values()
        job = entry.job
        await clock.elapse(SETTINGS.poll_seconds)  # nobody woke the dispatcher: its next look
    else:
        job = await submit_task(executor, "segmentation", task)
    await settle()
    task.release()
    await eventually(lambda: task.ended.is_set(), what="the task ending")
    await clock.elapse(SETTINGS.longest_retry_seconds)
    done = await _stored(store, job.id, lambda j: j.status.is_final)
    assert (done.status, done.result) == (JobStatus.COMPLETED, {"value": 3})
    assert executor.unwritten == 0


async def test_close_writes_the_outcomes_it_holds(
    store: SwitchedStore, clock: FakeClock, stepper: Callable[..., Stepper]
) -> None:
    executor = task_handlers(
        JobExecutor(store, InlineRunner(), clock, SETTINGS, DocumentPresenter(), HeldJobInputs())
    )
    await executor.start()
    task = stepper({"value": 4})
    job = await submit_task(executor, "segmentation", task)
    await _stored(store, job.id, lambda j: j.status is JobStatus.RUNNING)
    store.down = True
    task.release()
    await eventually(lambda: executor.unwritten == 1, what="the outcome held")
    store.down = False
    await executor.close()  # before the next heartbeat
    done = await GetJob(store).execute(job.id)
    assert (done.status, done.result) == (JobStatus.COMPLETED, {"value": 4})


async def test_the_reaper_counts_a_lease_only_from_the_end_of_an_outage(
    store: SwitchedStore, executor: JobExecutor, clock: FakeClock
) -> None:
    now = clock.now()
    job = Job(id="of-a-dead-replica", type="segmentation", status=JobStatus.QUEUED, created_at=now)
    await InMemoryJobStore.create(store, job)
    # On its last attempt, so that the reaper fails it rather than give it to this replica.
    await InMemoryJobStore.start_job(store, job.id, owner="replica-dead", now=now, lease_seconds=5)
    await InMemoryJobStore.requeue(store, job.id, owner="replica-dead", refund_attempt=False)
    await InMemoryJobStore.start_job(store, job.id, owner="replica-dead", now=now, lease_seconds=5)
    store.down = True
    await clock.elapse(60)  # its lease ran out during the outage: that says nothing about its worker
    store.down = False
    await clock.elapse(SETTINGS.lease_seconds - SETTINGS.reaper_seconds)
    assert (await store.get(job.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]
    await clock.elapse(2 * SETTINGS.reaper_seconds)  # a whole lease with the store back
    reaped = await store.get(job.id)
    assert reaped is not None and reaped.error is not None and reaped.error.code == "WORKER_LOST"
