"""Runs submitted jobs in the background of this replica, and keeps their record honest.

Each job holds a lease in the job store that this replica renews while it queues or runs the job;
the same heartbeat reads the stored status, so a cancel made through any replica reaches the job
within one heartbeat. A replica that dies stops renewing, and any replica's reaper then fails the
job with WORKER_LOST (no automatic retry: analyses are cheap to resubmit, and a job that killed its
worker, e.g. out of memory, would likely kill the next one too).

A job store outage loses nothing and fails nothing:
- jobs go on computing; a start the store could not record is recorded when it is back;
- a finished job's outcome is kept in this process (at most `unwritten_limit` results; past that,
  the job is recorded as failed DEPENDENCY_UNAVAILABLE, a note of a few hundred bytes, instead of
  its result) and stays in the heartbeat, which renews its lease and retries the write with backoff
  (doubling from the heartbeat interval up to `longest_retry_seconds`) until the store takes it;
- the reaper fails a job WORKER_LOST only after it has itself reached the store without a failure
  for a whole lease: an expired lease then means a worker that could have renewed and did not. A
  lease that ran out during an outage means nothing (no replica could renew), so a live replica
  always gets a full lease after the store is back to renew its jobs, and a job of a dead replica
  is failed one lease after the store is back. A replica cut off from a store that others still
  reach is, for them, dead: its jobs are failed after the lease, and its late writes are refused.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from application import ports
from application.errors import DependencyUnavailable, TaskCancelled
from application.ports import Clock, ComputeRunner, JobScheduler, JobStore, Reservation, ResultPresenter
from application.store_contact import StoreContact
from domain.errors import IllegalTransition, NotFound, WorkerError
from domain.jobs import Job, JobFailure, JobStatus

log = logging.getLogger(__name__)

SHUTDOWN = JobFailure("SHUTDOWN", "the worker shut down before the job finished; submit it again")
INTERNAL = JobFailure("INTERNAL", "the job failed unexpectedly; the worker's log has the details")


def _unkept(limit: int) -> JobFailure:
    return JobFailure(
        DependencyUnavailable.code,
        f"the job finished while the job store was unreachable, and its result could not be kept "
        f"(this replica already held {limit} unwritten results); submit it again",
    )


@dataclass(frozen=True)
class JobSettings:
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 0.5
    reaper_seconds: float = 10.0
    default_timeout_seconds: float = 3600.0
    timeouts: Mapping[str, float] = field(default_factory=dict)
    owner: str = field(default_factory=lambda: f"replica-{uuid.uuid4().hex[:12]}")
    # Finished results kept in memory while the store cannot take them.
    unwritten_limit: int = 64

    def timeout_for(self, job_type: str) -> float:
        return self.timeouts.get(job_type, self.default_timeout_seconds)

    @property
    def longest_retry_seconds(self) -> float:
        # Short against the lease: after an outage shorter than the reaper's notice, the first
        # renewal must still land well inside the lease that is left.
        return max(self.heartbeat_seconds, min(5.0, self.lease_seconds / 6))


@dataclass(frozen=True)
class _Outcome:
    status: JobStatus
    finished_at: float
    result: Mapping[str, Any] | None = None
    error: JobFailure | None = None


@dataclass(eq=False)
class _LocalJob:
    job_id: str
    job_type: str = ""
    queued_at: float = 0.0
    started: bool = False  # its computation began (for the observer)
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    progress: float | None = None
    message: str | None = None
    task: asyncio.Task[None] | None = None
    # When its computation started, while the store has not recorded that yet.
    unrecorded_start: float | None = None
    # Its final state, once the computation ended and the store could not take it.
    unwritten: _Outcome | None = None


class JobExecutor(JobScheduler):
    def __init__(
        self,
        store: JobStore,
        runner: ComputeRunner,
        clock: Clock,
        settings: JobSettings,
        presenter: ResultPresenter,
        observer: ports.JobObserver | None = None,
    ) -> None:
        self._store = store
        self._observer = observer or ports.NoJobObserver()
        self._presenter = presenter
        self._runner = runner
        self._clock = clock
        self._settings = settings
        self._local: dict[str, _LocalJob] = {}
        self._contact = StoreContact(settings.heartbeat_seconds, settings.longest_retry_seconds)
        self._reaper: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def owner(self) -> str:
        return self._settings.owner

    @property
    def unwritten(self) -> int:
        """Finished jobs whose outcome waits for the store (for metrics and tests)."""
        return sum(entry.unwritten is not None for entry in self._local.values())

    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_forever(), name="job-reaper")
        self._heartbeat = asyncio.create_task(self._heartbeat_forever(), name="job-heartbeat")

    async def close(self) -> None:
        """Stop every local job and record it as failed with SHUTDOWN (or, for a job that finished,
        its outcome), so nothing is silently lost."""
        for task in (self._reaper, self._heartbeat):
            if task is not None:
                task.cancel()
        local = list(self._local.values())
        for entry in local:
            if entry.task is not None:
                entry.task.cancel()
        await asyncio.gather(*(e.task for e in local if e.task is not None), return_exceptions=True)
        await asyncio.gather(*(self._last_word(entry) for entry in local))
        self._local.clear()

    async def _last_word(self, entry: _LocalJob) -> None:
        try:
            if entry.unwritten is not None:
                await self._write_outcome(entry)
                return
            await self._store.finish(
                entry.job_id, status=JobStatus.FAILED, now=self._clock.now(), error=SHUTDOWN
            )
        except DependencyUnavailable:
            log.error(
                "job %s: the job store is unreachable at shutdown; its final state is lost", entry.job_id
            )
        except WorkerError:
            pass  # already final (a cancel), or gone
        finally:
            if entry.unwritten is None:  # else its run told the observer already
                self._observed_end(entry, JobStatus.FAILED, SHUTDOWN.code, self._clock.now())

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
        except DependencyUnavailable:
            self._contact.lost()
            reservation.release()
            raise
        except BaseException:
            reservation.release()
            raise
        entry = _LocalJob(job.id, job.type, job.created_at)
        self._local[job.id] = entry
        self._observer.job_queued(job.type)
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
            entry.unrecorded_start = entry_started = self._clock.now()
            try:
                await self._record_start(entry)
            except DependencyUnavailable as error:
                # The work goes on; the heartbeat records the start once the store is back.
                self._contact.lost()
                log.warning("job %s started while the job store is unreachable: %s", job.id, error.message)
            entry.started = True
            self._observer.job_started(job.type, entry_started - job.created_at)

        def on_progress(fraction: float, message: str) -> None:
            entry.progress = fraction
            entry.message = message

        outcome: _Outcome | None = None
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
            outcome = _Outcome(JobStatus.COMPLETED, self._clock.now(), result=self._presenter.present(result))
        except (TaskCancelled, IllegalTransition, NotFound):
            pass  # cancelled (or removed) elsewhere: the store already holds the final state
        except WorkerError as error:
            failure = self._presenter.present_failure(job.type, JobFailure(error.code, error.message))
            outcome = self._failed(failure)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s failed unexpectedly", job.id)
            outcome = self._failed(INTERNAL)
        finally:
            reservation.release()
        if outcome is None:
            self._local.pop(job.id, None)
            self._observed_end(entry, JobStatus.CANCELLED, None, self._clock.now())
            return
        entry.unwritten = outcome
        try:
            await self._write_outcome(entry)
        except DependencyUnavailable as error:
            self._contact.lost()
            self._keep(entry, error)
        finally:
            # What the store is given: after a refusal (INTERNAL) or a dropped result, not before.
            told = entry.unwritten or outcome
            self._observed_end(entry, told.status, told.error.code if told.error else None, told.finished_at)

    def _observed_end(self, entry: _LocalJob, status: JobStatus, code: str | None, at: float) -> None:
        self._observer.job_finished(entry.job_type, status, code, at - entry.queued_at, started=entry.started)

    def _failed(self, failure: JobFailure) -> _Outcome:
        return _Outcome(
            JobStatus.FAILED, self._clock.now(), error=INTERNAL if failure.code == "INTERNAL" else failure
        )

    def _keep(self, entry: _LocalJob, error: DependencyUnavailable) -> None:
        """Hold an outcome the store could not take, for the heartbeat to write; past the bound,
        a result is replaced by a note that it could not be kept."""
        outcome = entry.unwritten
        assert outcome is not None
        limit = self._settings.unwritten_limit
        held = sum(e.unwritten is not None and e.unwritten.result is not None for e in self._local.values())
        if outcome.result is not None and held > limit:
            log.error("job %s: result dropped, %d unwritten results are held already", entry.job_id, limit)
            outcome = entry.unwritten = _Outcome(JobStatus.FAILED, outcome.finished_at, error=_unkept(limit))
        log.warning(
            "job %s finished as %s; the job store is unreachable (%s), written when it is back",
            entry.job_id,
            outcome.status.value,
            error.message,
        )

    async def _write_outcome(self, entry: _LocalJob) -> None:
        """Write the final state (after the start, if that is still unrecorded) and forget the job.
        DependencyUnavailable leaves it for the next attempt."""
        outcome = entry.unwritten
        assert outcome is not None
        try:
            if entry.unrecorded_start is not None:
                await self._record_start(entry)
            await self._store.finish(
                entry.job_id,
                status=outcome.status,
                now=outcome.finished_at,
                result=outcome.result,
                error=outcome.error,
            )
        except (IllegalTransition, NotFound):
            # Already final: a cancel won the race, the reaper gave up on us, or this is a repeat of
            # a write whose reply was lost. Exactly one final state, and it is not ours to change.
            pass
        except DependencyUnavailable:
            raise
        except WorkerError as error:
            # The store refuses this outcome (a value it cannot hold): record that the job failed.
            log.error("job %s: the job store refused its outcome: %s", entry.job_id, error.message)
            if outcome.error is not INTERNAL:
                entry.unwritten = _Outcome(JobStatus.FAILED, outcome.finished_at, error=INTERNAL)
                await self._write_outcome(entry)
                return
        self._local.pop(entry.job_id, None)

    async def _record_start(self, entry: _LocalJob) -> None:
        """queued -> running at the time the computation started, with a lease from now."""
        started = entry.unrecorded_start
        assert started is not None
        lease = self._clock.now() - started + self._settings.lease_seconds
        try:
            await self._store.start_job(entry.job_id, owner=self.owner, now=started, lease_seconds=lease)
        except IllegalTransition:
            # A repeat of a start whose reply was lost is ours already; anything else is a cancel.
            stored = await self._store.get(entry.job_id)
            if stored is None or stored.status is not JobStatus.RUNNING or stored.owner != self.owner:
                raise
        entry.unrecorded_start = None

    async def _heartbeat_forever(self) -> None:
        wait = self._settings.heartbeat_seconds
        while True:
            await self._clock.sleep(wait)
            try:
                for entry in list(self._local.values()):
                    try:
                        await self._tend(entry)
                    except DependencyUnavailable:
                        raise
                    except Exception:
                        # One job's bad record must not stop the heartbeat of every other job.
                        log.exception("heartbeat of job %s failed", entry.job_id)
            except DependencyUnavailable as error:
                # One failed call ends the round: the others would each wait out the same timeout.
                if self._contact.lost():
                    log.warning("job store unreachable: %s; retrying with backoff", error.message)
                wait = self._contact.back_off()
                continue
            if self._local:
                self._contact.reached(self._clock.now())
            wait = self._settings.heartbeat_seconds

    async def _tend(self, entry: _LocalJob) -> None:
        if entry.task is not None and entry.task.done() and entry.unwritten is not None:
            await self._write_outcome(entry)
            return
        if entry.unwritten is not None:
            return  # its own run is writing it right now
        if entry.unrecorded_start is not None:
            try:
                await self._record_start(entry)
            except (IllegalTransition, NotFound):
                entry.cancel.set()
                return
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
        except IllegalTransition as error:
            log.warning("heartbeat of job %s failed: %s", entry.job_id, error.message)
            return
        if stored.status is JobStatus.CANCELLED or stored.status is JobStatus.FAILED:
            entry.cancel.set()

    async def _reap_forever(self) -> None:
        while True:
            now = self._clock.now()
            try:
                # A round trip, whatever the store (Redis purges nothing itself: it expires keys).
                reason = await self._store.check()
                if reason is not None:
                    raise DependencyUnavailable(reason)
                self._contact.reached(now)
                await self._store.purge_expired(now=now)
                if self._contact.steady_for(now) >= self._settings.lease_seconds:
                    for job in await self._store.reap_expired_leases(now=now):
                        log.warning("job %s lost its worker (%s); marked failed", job.id, job.owner)
            except DependencyUnavailable as error:
                self._contact.lost()
                log.warning("job reaper: %s", error.message)
            await self._clock.sleep(self._settings.reaper_seconds)
