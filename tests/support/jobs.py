"""The job engine as the use cases see it: JobExecutor over the real InMemoryJobStore, any runner,
any clock; with GetJob and CancelJob, and a wait for a job to reach a state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from adapters.memory.job_store import InMemoryJobStore
from application.cancel_job import CancelJob
from application.get_job import GetJob
from application.job_executor import JobExecutor, JobSettings
from application.ports import Clock, ComputeRunner, JobObserver
from domain.jobs import Job
from support.eventually import eventually
from support.presenter import DocumentPresenter


class CountingStore(InMemoryJobStore):
    """The real in-memory store, counting the jobs created through it."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.created: list[str] = []

    async def create(self, job: Job) -> None:
        await super().create(job)
        self.created.append(job.id)


@dataclass
class Engine:
    store: CountingStore
    runner: ComputeRunner
    clock: Clock
    executor: JobExecutor
    get: GetJob
    cancel: CancelJob

    async def job(self, job_id: str) -> Job:
        return await self.get.execute(job_id)

    async def wait(self, job_id: str, predicate: Callable[[Job], bool], timeout: float = 10.0) -> Job:
        return await eventually(
            lambda: self.job(job_id), predicate, timeout=timeout, what=f"the state wanted of job {job_id}"
        )

    async def final(self, job_id: str, timeout: float = 10.0) -> Job:
        return await self.wait(job_id, lambda j: j.status.is_final, timeout)


async def started_engine(
    runner: ComputeRunner, clock: Clock, settings: JobSettings, observer: JobObserver | None = None
) -> Engine:
    store = CountingStore(clock)
    executor = JobExecutor(store, runner, clock, settings, DocumentPresenter(), observer)
    await executor.start()
    return Engine(store, runner, clock, executor, GetJob(store), CancelJob(store, executor, clock))
