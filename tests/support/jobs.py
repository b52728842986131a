"""The job engine as the use cases see it: JobExecutor over the real InMemoryJobStore, any runner,
any clock; with GetJob and CancelJob, and a wait for a job to reach a state.

`Engine.submit(job_type, task, *args)` queues `task(*args, progress=...)` as a job: its input holds
the callable itself, kept in this process by HeldJobInputs (so a test task may hold threads and
events), and TaskHandler runs it for every job type the tests use."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.memory.job_store import InMemoryJobStore
from application.cancel_job import CancelJob
from application.get_job import GetJob
from application.job_executor import JobExecutor, JobSettings
from application.ports import (
    Clock,
    ComputeRunner,
    JobHandler,
    JobInput,
    JobInputCodec,
    JobObserver,
    PreparedTask,
    QueueLimits,
)
from domain.jobs import Job, RequestEcho
from support.eventually import eventually
from support.presenter import DocumentPresenter


class CountingStore(InMemoryJobStore):
    """The real in-memory store, counting the jobs created through it."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.created: list[str] = []

    async def create(
        self,
        job: Job,
        *,
        payload: bytes | None = None,
        idempotency_key: str | None = None,
        limits: QueueLimits | None = None,
    ) -> Job:
        stored = await super().create(job, payload=payload, idempotency_key=idempotency_key, limits=limits)
        if stored.id == job.id:
            self.created.append(job.id)
        return stored


JOB_TYPES = ("segmentation", "policy_analysis", "content_analysis", "drift_analysis", "gbm_training")


class TaskHandler(JobHandler):
    """Runs the callable a test put in the job's input."""

    def __init__(self, job_type: str) -> None:
        self.job_type = job_type  # type: ignore[misc]

    async def prepare(self, job_input: JobInput) -> PreparedTask:
        task, args = job_input.spec
        return PreparedTask(task, tuple(args))


class HeldJobInputs(JobInputCodec):
    """Job inputs kept in this process; the payload is a token naming one."""

    def __init__(self) -> None:
        self._held: dict[bytes, JobInput] = {}
        self._tokens = itertools.count()

    def encode(self, job_id: str, job_input: JobInput) -> bytes:
        token = f"held-{next(self._tokens)}".encode()
        self._held[token] = job_input
        return token

    def decode(self, payload: bytes) -> JobInput:
        return self._held[payload]

    def discard(self, payload: bytes) -> None:
        self._held.pop(payload, None)

    @property
    def keeps_files(self) -> bool:
        return False

    def stored_elsewhere(self) -> list[str]:
        return []

    def discard_job(self, job_id: str) -> None:
        return None

    @property
    def held(self) -> int:
        return len(self._held)


def task_input(task: Callable[..., object], *args: Any) -> JobInput:
    return JobInput(spec=(task, args), echo=RequestEcho())


@dataclass
class Engine:
    store: CountingStore
    runner: ComputeRunner
    clock: Clock
    executor: JobExecutor
    get: GetJob
    cancel: CancelJob

    async def submit(self, job_type: str, task: Callable[..., object], *args: Any) -> Job:
        return await self.executor.submit(job_type, task_input(task, *args))

    async def job(self, job_id: str) -> Job:
        return await self.get.execute(job_id)

    async def wait(self, job_id: str, predicate: Callable[[Job], bool], timeout: float = 10.0) -> Job:
        return await eventually(
            lambda: self.job(job_id), predicate, timeout=timeout, what=f"the state wanted of job {job_id}"
        )

    async def final(self, job_id: str, timeout: float = 10.0) -> Job:
        return await self.wait(job_id, lambda j: j.status.is_final, timeout)


async def started_engine(
    runner: ComputeRunner,
    clock: Clock,
    settings: JobSettings,
    observer: JobObserver | None = None,
    codec: JobInputCodec | None = None,
) -> Engine:
    store = CountingStore(clock)
    executor = JobExecutor(
        store, runner, clock, settings, DocumentPresenter(), codec or HeldJobInputs(), observer
    )
    for job_type in JOB_TYPES:
        executor.register(TaskHandler(job_type))
    await executor.start()
    return Engine(store, runner, clock, executor, GetJob(store), CancelJob(store, executor, clock))


async def submit_task(executor: JobExecutor, job_type: str, task: Callable[..., object], *args: Any) -> Job:
    """Queue `task(*args, progress=...)` on an executor whose handlers are TaskHandlers."""
    return await executor.submit(job_type, task_input(task, *args))


def task_handlers(executor: JobExecutor) -> JobExecutor:
    for job_type in JOB_TYPES:
        executor.register(TaskHandler(job_type))
    return executor
