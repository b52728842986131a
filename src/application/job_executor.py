"""Runs submitted jobs in the background of this replica, and keeps their record honest.

Each job holds a lease in the job store that this replica renews while it queues or runs the job;
the same heartbeat reads the stored status, so a cancel made through any replica reaches the job
within one heartbeat. A replica that dies stops renewing, and any replica's reaper then fails the
job with WORKER_LOST (no automatic retry: analyses are cheap to resubmit, and a job that killed its
worker, e.g. out of memory, would likely kill the next one too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from application.errors import DependencyUnavailable, TaskCancelled
from application.ports import Clock, ComputeRunner, JobScheduler, JobStore, Reservation, ResultPresenter
from domain.errors import IllegalTransition, NotFound, WorkerError
from domain.jobs import Job, JobFailure, JobStatus

log = logging.getLogger(__name__)

SHUTDOWN = JobFailure("SHUTDOWN", "the worker shut down before the job finished; submit it again")
INTERNAL = JobFailure("INTERNAL", "the job failed unexpectedly; the worker's log has the details")


@dataclass(frozen=True)
class JobSettings:
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 0.5
    reaper_seconds: float = 10.0
    default_timeout_seconds: float = 3600.0
    timeouts: Mapping[str, float] = field(default_factory=dict)
    owner: str = field(default_factory=lambda: f"replica-{uuid.uuid4().hex[:12]}")

    def timeout_for(self, job_type: str) -> float:
        return self.timeouts.get(job_type, self.default_timeout_seconds)


@dataclass(eq=False)
class _LocalJob:
    job_id: str
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    progress: float | None = None
    message: str | None = None
    task: asyncio.Task[None] | None = None


class JobExecutor(JobScheduler):
    def __init__(
        self,
        store: JobStore,
        runner: ComputeRunner,
        clock: Clock,
        settings: JobSettings,
        presenter: ResultPresenter,
    ) -> None:
        self._store = store
        self._presenter = presenter
        self._runner = runner
        self._clock = clock
        self._settings = settings
        self._local: dict[str, _LocalJob] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def owner(self) -> str:
        return self._settings.owner

    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_forever(), name="job-reaper")
        self._heartbeat = asyncio.create_task(self._heartbeat_forever(), name="job-heartbeat")

    async def close(self) -> None:
        """Stop every local job and record it as failed with SHUTDOWN, so nothing is silently lost."""
        for task in (self._reaper, self._heartbeat):
            if task is not None:
                task.cancel()
        local = list(self._local.values())
        for entry in local:
            if entry.task is not None:
                entry.task.cancel()
        await asyncio.gather(*(e.task for e in local if e.task is not None), return_exceptions=True)
        for entry in local:
            with contextlib.suppress(WorkerError):
                await self._store.finish(
                    entry.job_id, status=JobStatus.FAILED, now=self._clock.now(), error=SHUTDOWN
                )
        self._local.clear()

    async def submit(self, job_type: str, task: Callable[..., object], *args: Any) -> Job:
        """Queue `task(*args, progress=...)` as a job; Busy when the compute queue is full."""
        reservation = self._runner.reserve()
        now = self._clock.now()
        job = Job(
            id=uuid.uuid4().hex,
            type=job_type,
            status=JobStatus.QUEUED,
            created_at=now,
            owner=self.owner,
            lease_expires_at=now + self._settings.lease_seconds,
        )
        try:
            await self._store.create(job)
        except BaseException:
            reservation.release()
            raise
        entry = _LocalJob(job.id)
        self._local[job.id] = entry
        entry.task = asyncio.create_task(self._run(entry, job, reservation, task, args), name=f"job-{job.id}")
        return job

    def cancel_local(self, job_id: str) -> None:
        """Stop a job of this replica now instead of at its next heartbeat."""
        entry = self._local.get(job_id)
        if entry is not None:
            entry.cancel.set()

    async def _run(
        self,
        entry: _LocalJob,
        job: Job,
        reservation: Reservation,
        task: Callable[..., object],
        args: tuple[Any, ...],
    ) -> None:
        async def mark_running() -> None:
            await self._store.start_job(
                job.id, owner=self.owner, now=self._clock.now(), lease_seconds=self._settings.lease_seconds
            )

        def on_progress(fraction: float, message: str) -> None:
            entry.progress = fraction
            entry.message = message

        try:
            result = await self._runner.run(
                task,
                *args,
                reservation=reservation,
                on_progress=on_progress,
                timeout=self._settings.timeout_for(job.type),
                cancel_event=entry.cancel,
                on_start=mark_running,
            )
            await self._finish(job.id, JobStatus.COMPLETED, result=self._presenter.present(result))
        except (TaskCancelled, IllegalTransition, NotFound):
            pass  # cancelled (or removed) elsewhere: the store already holds the final state
        except WorkerError as error:
            failure = self._presenter.present_failure(job.type, JobFailure(error.code, error.message))
            await self._finish(job.id, JobStatus.FAILED, error=failure)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s failed unexpectedly", job.id)
            await self._finish(job.id, JobStatus.FAILED, error=INTERNAL)
        finally:
            reservation.release()
            self._local.pop(job.id, None)

    async def _finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        result: Mapping[str, Any] | None = None,
        error: JobFailure | None = None,
    ) -> None:
        if error is not None and error.code == "INTERNAL":
            error = INTERNAL
        try:
            await self._store.finish(job_id, status=status, now=self._clock.now(), result=result, error=error)
        except (IllegalTransition, NotFound):
            pass  # a cancel won the race: exactly one final state, and it is the cancel
        except DependencyUnavailable:
            log.error("job %s finished as %s but the job store is unreachable", job_id, status.value)

    async def _heartbeat_forever(self) -> None:
        while True:
            await self._clock.sleep(self._settings.heartbeat_seconds)
            for entry in list(self._local.values()):
                await self._beat(entry)

    async def _beat(self, entry: _LocalJob) -> None:
        try:
            stored = await self._store.heartbeat(
                entry.job_id,
                owner=self.owner,
                now=self._clock.now(),
                lease_seconds=self._settings.lease_seconds,
                progress=entry.progress,
                message=entry.message,
            )
        except NotFound:
            entry.cancel.set()
            return
        except (DependencyUnavailable, IllegalTransition) as error:
            log.warning("heartbeat of job %s failed: %s", entry.job_id, error.message)
            return
        if stored.status is JobStatus.CANCELLED or stored.status is JobStatus.FAILED:
            entry.cancel.set()

    async def _reap_forever(self) -> None:
        while True:
            try:
                now = self._clock.now()
                for job in await self._store.reap_expired_leases(now=now):
                    log.warning("job %s lost its worker (%s); marked failed", job.id, job.owner)
                await self._store.purge_expired(now=now)
            except DependencyUnavailable as error:
                log.warning("job reaper: %s", error.message)
            await self._clock.sleep(self._settings.reaper_seconds)
