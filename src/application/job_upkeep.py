"""The upkeep of the jobs this replica runs: their leases and progress (the heartbeat), their
outcomes (written now, or kept until the store is back), the reaper that gives the jobs of dead
replicas back to the queue, and the shutdown that gives this replica's own jobs back.

Outage rules:
- a finished job's outcome is kept in this process (at most `unwritten_limit` results; past that,
  the job is recorded as failed DEPENDENCY_UNAVAILABLE, a note of a few hundred bytes, instead of
  its result) and stays in the heartbeat, which renews its lease and retries the write with backoff
  (doubling from the heartbeat interval up to `longest_retry_seconds`) until the store takes it;
- the reaper judges leases only after it has itself reached the store without a failure for a
  whole lease: an expired lease then means a replica that could have renewed and did not. A lease
  that ran out during an outage means nothing (no replica could renew), so a live replica always
  gets a full lease after the store is back to renew its jobs. A replica cut off from a store that
  others still reach is, for them, dead: its jobs run again elsewhere, and its late writes are
  refused (they name it as the owner, and the job is no longer its).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from application import ports
from application.errors import DependencyUnavailable
from application.ports import Clock, JobInputCodec, JobStore, QueueLimits
from application.store_contact import StoreContact
from domain.errors import IllegalTransition, NotFound, WorkerError
from domain.jobs import JobFailure, JobStatus

log = logging.getLogger(__name__)

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
    # Attempts a job gets when its replica dies (ML_WORKER_JOB_MAX_ATTEMPTS).
    max_attempts: int = 2
    limits: QueueLimits = field(default_factory=QueueLimits)
    # Running jobs of one tenant in the store (ML_WORKER_MAX_RUNNING_PER_TENANT); None: no cap.
    tenant_cap: int | None = None
    # How often an idle dispatcher looks at the queue; a local submission or a freed slot wakes it.
    poll_seconds: float = 0.25
    # How stale the queue depth may be when a request is refused before its body is read.
    room_refresh_seconds: float = 0.5

    def timeout_for(self, job_type: str) -> float:
        return self.timeouts.get(job_type, self.default_timeout_seconds)

    @property
    def longest_retry_seconds(self) -> float:
        # Short against the lease: after an outage shorter than the reaper's notice, the first
        # renewal must still land well inside the lease that is left.
        return max(self.heartbeat_seconds, min(5.0, self.lease_seconds / 6))


@dataclass(frozen=True)
class Outcome:
    status: JobStatus
    finished_at: float
    result: Mapping[str, Any] | None = None
    error: JobFailure | None = None


@dataclass(eq=False)
class LocalJob:
    job_id: str
    job_type: str = ""
    queued_at: float = 0.0
    started: bool = False  # its computation began here (for the observer)
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    progress: float | None = None
    message: str | None = None
    task: asyncio.Task[None] | None = None
    payload: bytes | None = None
    # Its final state, once the computation ended and the store could not take it.
    unwritten: Outcome | None = None


class JobUpkeep:
    def __init__(
        self,
        store: JobStore,
        clock: Clock,
        settings: JobSettings,
        codec: JobInputCodec,
        observer: ports.JobObserver,
        wake: Callable[[], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings
        self._codec = codec
        self._observer = observer
        self._wake = wake
        self.local: dict[str, LocalJob] = {}
        self._contact = StoreContact(settings.heartbeat_seconds, settings.longest_retry_seconds)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def owner(self) -> str:
        return self._settings.owner

    @property
    def unwritten(self) -> int:
        return sum(entry.unwritten is not None for entry in self.local.values())

    def lost_store(self, error: DependencyUnavailable) -> None:
        if self._contact.lost():
            log.warning("job store unreachable: %s", error.message)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._reap_forever(), name="job-reaper"),
            asyncio.create_task(self._heartbeat_forever(), name="job-heartbeat"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        local = list(self.local.values())
        for entry in local:
            if entry.task is not None:
                entry.task.cancel()
        await asyncio.gather(*(e.task for e in local if e.task is not None), return_exceptions=True)
        await asyncio.gather(*(self._last_word(entry) for entry in local))
        self.local.clear()

    async def _last_word(self, entry: LocalJob) -> None:
        """A finished job's outcome is written; a job still running goes back to the queue, its
        attempt not counted: the job did not fail, this replica left (a deploy)."""
        try:
            if entry.unwritten is not None:
                await self._write_outcome(entry)
                return
            await self._store.requeue(entry.job_id, owner=self.owner, refund_attempt=True)
            self._observer.job_requeued(entry.job_type, "shutdown")
        except DependencyUnavailable:
            log.error(
                "job %s: the job store is unreachable at shutdown; it runs again once its lease expires",
                entry.job_id,
            )
        except WorkerError:
            pass  # already final (a cancel), given to another replica, or gone

    # --- outcomes -----------------------------------------------------------------------------------

    def failed(self, failure: JobFailure) -> Outcome:
        return Outcome(
            JobStatus.FAILED, self._clock.now(), error=INTERNAL if failure.code == "INTERNAL" else failure
        )

    def observed_end(self, entry: LocalJob, status: JobStatus, code: str | None, at: float) -> None:
        self._observer.job_finished(entry.job_type, status, code, at - entry.queued_at, started=entry.started)

    async def conclude(self, entry: LocalJob, outcome: Outcome, payload: bytes | None) -> None:
        """Write a finished job's outcome, or keep it for the heartbeat while the store is down."""
        entry.unwritten = outcome
        entry.payload = payload
        try:
            await self._write_outcome(entry)
        except DependencyUnavailable as error:
            self._contact.lost()
            self._keep(entry, error)
        finally:
            # What the store is given: after a refusal (INTERNAL) or a dropped result, not before.
            told = entry.unwritten or outcome
            self.observed_end(entry, told.status, told.error.code if told.error else None, told.finished_at)

    def _keep(self, entry: LocalJob, error: DependencyUnavailable) -> None:
        """Hold an outcome the store could not take, for the heartbeat to write; past the bound,
        a result is replaced by a note that it could not be kept."""
        outcome = entry.unwritten
        assert outcome is not None
        limit = self._settings.unwritten_limit
        held = sum(e.unwritten is not None and e.unwritten.result is not None for e in self.local.values())
        if outcome.result is not None and held > limit:
            log.error("job %s: result dropped, %d unwritten results are held already", entry.job_id, limit)
            outcome = entry.unwritten = Outcome(JobStatus.FAILED, outcome.finished_at, error=_unkept(limit))
        log.warning(
            "job %s finished as %s; the job store is unreachable (%s), written when it is back",
            entry.job_id,
            outcome.status.value,
            error.message,
        )

    async def _write_outcome(self, entry: LocalJob) -> None:
        """Write the final state and forget the job. DependencyUnavailable leaves it for the next
        attempt."""
        outcome = entry.unwritten
        assert outcome is not None
        try:
            await self._store.finish(
                entry.job_id,
                status=outcome.status,
                now=outcome.finished_at,
                result=outcome.result,
                error=outcome.error,
                owner=self.owner,
            )
        except (IllegalTransition, NotFound):
            # Already final (a cancel won the race, or this repeats a write whose reply was lost),
            # or no longer ours: the reaper gave it to another replica. Not ours to change.
            pass
        except DependencyUnavailable:
            raise
        except WorkerError as error:
            # The store refuses this outcome (a value it cannot hold): record that the job failed.
            log.error("job %s: the job store refused its outcome: %s", entry.job_id, error.message)
            if outcome.error is not INTERNAL:
                entry.unwritten = Outcome(JobStatus.FAILED, outcome.finished_at, error=INTERNAL)
                await self._write_outcome(entry)
                return
        self.local.pop(entry.job_id, None)
        if entry.payload is not None:
            await asyncio.to_thread(self._codec.discard, entry.payload)

    # --- heartbeat ---------------------------------------------------------------------------------

    async def _heartbeat_forever(self) -> None:
        wait = self._settings.heartbeat_seconds
        while True:
            await self._clock.sleep(wait)
            try:
                for entry in list(self.local.values()):
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
            if self.local:
                self._contact.reached(self._clock.now())
            wait = self._settings.heartbeat_seconds

    async def _tend(self, entry: LocalJob) -> None:
        if entry.task is not None and entry.task.done() and entry.unwritten is not None:
            await self._write_outcome(entry)
            return
        if entry.unwritten is not None:
            return  # its own run is writing it right now
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
        # Cancelled, failed by a timeout elsewhere, or given to another replica after a lease
        # this replica could not renew: stop computing.
        if stored.status is not JobStatus.RUNNING or stored.owner != self.owner:
            entry.cancel.set()

    # --- reaper -------------------------------------------------------------------------------------

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
                self._observer.queue_read(await self._store.queue_depth())
                if self._contact.steady_for(now) >= self._settings.lease_seconds:
                    await self._reap(now)
                await self._sweep_payloads()
            except DependencyUnavailable as error:
                self._contact.lost()
                log.warning("job reaper: %s", error.message)
            await self._clock.sleep(self._settings.reaper_seconds)

    async def _reap(self, now: float) -> None:
        requeued = False
        for job in await self._store.reap_expired_leases(now=now, max_attempts=self._settings.max_attempts):
            if job.status is JobStatus.QUEUED:
                requeued = True
                self._observer.job_requeued(job.type, "lease_expired")
                log.warning("job %s lost its replica; queued again (attempt %d ran)", job.id, job.attempts)
            else:
                self._observer.job_lost(job.type)
                log.warning("job %s lost its replica on its last attempt; marked failed", job.id)
        if requeued:
            self._wake()

    async def _sweep_payloads(self) -> None:
        """Remove payloads kept outside the store whose job ended on any replica, or expired."""
        if not self._codec.keeps_files:
            return
        for job_id in await asyncio.to_thread(self._codec.stored_elsewhere):
            job = await self._store.get(job_id)
            if job is None or job.status.is_final:
                await asyncio.to_thread(self._codec.discard_job, job_id)
