"""Runs jobs from the job store's queue on this replica, and keeps their record honest.

A submission stores the job and its input (JobInputCodec) in the store's queue and returns at once.
Every replica's dispatcher claims the oldest queued job whenever one of its compute slots is free
and no synchronous training waits for that slot, and runs it with the handler of its type.

Each running job holds a lease that this replica renews (job_upkeep.py); the same heartbeat reads
the stored job, so a cancel made through any replica reaches it within one heartbeat. A replica
that dies stops renewing; any replica's reaper then queues its jobs again, up to `max_attempts`
attempts, and only then fails them WORKER_LOST. A graceful shutdown gives its running jobs back to
the queue without counting the attempt.

A job store outage loses nothing and fails nothing: a finished job's outcome is kept in this
process (at most `unwritten_limit` results; past that, the job is recorded as failed
DEPENDENCY_UNAVAILABLE instead of its result) and the heartbeat retries the write with backoff
until the store takes it; the reaper judges leases only after it has itself reached the store for
a whole lease (see job_upkeep.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field

from application import ports
from application.errors import Busy, DependencyUnavailable, TaskCancelled
from application.job_upkeep import INTERNAL, JobSettings, JobUpkeep, LocalJob, Outcome
from application.ports import (
    Clock,
    ComputeRunner,
    JobHandler,
    JobInput,
    JobInputCodec,
    JobScheduler,
    JobStore,
    Reservation,
    ResultPresenter,
)
from domain.errors import IllegalTransition, NotFound, WorkerError
from domain.jobs import Job, JobFailure, JobStatus

log = logging.getLogger(__name__)

__all__ = ["JobExecutor", "JobSettings"]

_LARGE_PAYLOAD_BYTES = 1 << 20
_LARGE_PAYLOADS_AT_ONCE = 2


@dataclass
class _Room:
    """The queue's depth as last read, so that a full queue refuses a request before its body is
    read without a store round trip per request."""

    queued: int = 0
    read_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class JobExecutor(JobScheduler):
    def __init__(
        self,
        store: JobStore,
        runner: ComputeRunner,
        clock: Clock,
        settings: JobSettings,
        presenter: ResultPresenter,
        codec: JobInputCodec,
        observer: ports.JobObserver | None = None,
    ) -> None:
        self._store = store
        self._observer = observer or ports.NoJobObserver()
        self._presenter = presenter
        self._runner = runner
        self._codec = codec
        self._clock = clock
        self._settings = settings
        self._handlers: dict[str, JobHandler] = {}
        self._upkeep = JobUpkeep(store, clock, settings, codec, self._observer, wake=self._wake_dispatcher)
        self._wake = asyncio.Event()
        self._room = _Room()
        self._large_writes = asyncio.Semaphore(_LARGE_PAYLOADS_AT_ONCE)
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False

    def register(self, handler: JobHandler) -> None:
        self._handlers[handler.job_type] = handler

    @property
    def owner(self) -> str:
        return self._settings.owner

    @property
    def unwritten(self) -> int:
        """Finished jobs whose outcome waits for the store (for metrics and tests)."""
        return self._upkeep.unwritten

    async def start(self) -> None:
        await self._upkeep.start()
        self._dispatcher = asyncio.create_task(self._dispatch_forever(), name="job-dispatcher")

    async def close(self) -> None:
        """Stop claiming, stop every local job and give it back to the queue for another replica
        (or record its outcome, for a job that finished), so nothing is lost."""
        self._closing = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        await self._upkeep.close()

    # --- submission ------------------------------------------------------------------------------

    async def submit(
        self,
        job_type: str,
        job_input: JobInput,
        *,
        tenant_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        if job_type not in self._handlers:
            raise KeyError(f"no handler for jobs of type {job_type!r}")
        if self._closing:
            raise Busy("this replica is shutting down; retry on another")
        job = Job(
            id=uuid.uuid4().hex,
            type=job_type,
            status=JobStatus.QUEUED,
            created_at=self._clock.now(),
            tenant_id=tenant_id,
        )
        payload = await asyncio.to_thread(self._codec.encode, job.id, job_input)
        try:
            async with self._writing(len(payload)):
                stored = await self._store.create(
                    job, payload=payload, idempotency_key=idempotency_key, limits=self._settings.limits
                )
        except (DependencyUnavailable, asyncio.CancelledError):
            # The job may be stored all the same (a lost reply, a caller gone mid-write): its
            # payload stays; if the job is not there, the reaper's sweep removes a payload kept
            # outside the store.
            raise
        except BaseException:
            await asyncio.to_thread(self._codec.discard, payload)
            raise
        if stored.id != job.id:  # an earlier submission under the same key
            await asyncio.to_thread(self._codec.discard, payload)
            return stored
        self._observer.job_queued(job.type)
        self._wake_dispatcher()
        return stored

    def _writing(self, size: int) -> contextlib.AbstractAsyncContextManager[object]:
        # Large inputs are written to the store a few at a time: a burst of them written at once
        # would share the store's bandwidth and each miss the deadline its own size allows.
        if size < _LARGE_PAYLOAD_BYTES:
            return contextlib.nullcontext()
        return self._large_writes

    async def check_room(self) -> None:
        room = self._room
        now = self._clock.now()
        async with room.lock:
            if now - room.read_at >= self._settings.room_refresh_seconds:
                depth = await self._store.queue_depth()
                self._observer.queue_read(depth)
                room.queued, room.read_at = depth.queued, now
        if room.queued >= self._settings.limits.max_queued_jobs:
            raise Busy(
                f"the job queue is full ({room.queued} jobs wait, ML_WORKER_MAX_QUEUED_JOBS); retry later"
            )

    def cancelled(self, job: Job) -> None:
        entry = self._upkeep.local.get(job.id)
        if entry is not None:
            entry.cancel.set()  # its run counts it when it stops
        elif job.started_at is None:
            # Cancelled in the queue: no replica's run will ever see it end.
            self._observer.job_finished(
                job.type, JobStatus.CANCELLED, None, self._clock.now() - job.created_at, started=False
            )

    # --- claiming ----------------------------------------------------------------------------------

    def _wake_dispatcher(self) -> None:
        self._wake.set()

    def _free_slot(self) -> bool:
        # Reservations count queued and running tasks alike: a waiting synchronous training holds
        # one, so the dispatcher leaves it the next slot.
        capacity = self._runner.capacity()
        return capacity.busy + capacity.queued < capacity.workers

    async def _dispatch_forever(self) -> None:
        while True:
            wait = self._settings.poll_seconds
            if self._free_slot():
                try:
                    if await self._claim_one():
                        continue  # another slot may be free too
                except DependencyUnavailable as error:
                    self._upkeep.lost_store(error)
                    wait = self._settings.longest_retry_seconds
                except Exception:
                    log.exception("job dispatcher: claiming failed")
                    wait = self._settings.longest_retry_seconds
            self._wake.clear()
            # On the engine's clock, as every wait of the engine (tests move it). Not
            # asyncio.wait_for: on 3.11 it can swallow the cancellation that stops the loop.
            waiters = {
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(self._clock.sleep(wait)),
            }
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _claim_one(self) -> bool:
        reservation = self._runner.reserve()
        try:
            claim = await self._store.claim_next(
                owner=self.owner,
                now=self._clock.now(),
                lease_seconds=self._settings.lease_seconds,
                tenant_cap=self._settings.tenant_cap,
            )
        except BaseException:
            reservation.release()
            raise
        if claim is None:
            reservation.release()
            return False
        job = claim.job
        self._observer.job_started(job.type, max(0.0, self._clock.now() - job.created_at))
        entry = LocalJob(job.id, job.type, job.created_at, started=True)
        self._upkeep.local[job.id] = entry
        entry.task = asyncio.create_task(self._run(entry, reservation, claim.payload), name=f"job-{job.id}")
        return True

    # --- running ------------------------------------------------------------------------------------

    async def _run(self, entry: LocalJob, reservation: Reservation, payload: bytes | None) -> None:
        def on_progress(fraction: float, message: str) -> None:
            entry.progress = fraction
            entry.message = message

        outcome: Outcome | None = None
        try:
            prepared = await self._prepare(entry, payload)
            result = await self._runner.run(
                prepared.task,
                *prepared.args,
                reservation=reservation,
                on_progress=on_progress,
                timeout=self._settings.timeout_for(entry.job_type),
                cancel_event=entry.cancel,
            )
            outcome = Outcome(JobStatus.COMPLETED, self._clock.now(), result=self._presenter.present(result))
        except (TaskCancelled, IllegalTransition, NotFound):
            pass  # cancelled, or given to another replica: the store holds its state
        except WorkerError as error:
            failure = self._presenter.present_failure(entry.job_type, JobFailure(error.code, error.message))
            outcome = self._upkeep.failed(failure)
        except asyncio.CancelledError:
            raise  # a shutdown: close() gives the job back
        except Exception:
            log.exception("job %s failed unexpectedly", entry.job_id)
            outcome = self._upkeep.failed(INTERNAL)
        finally:
            reservation.release()
            self._wake_dispatcher()
        if outcome is None:
            self._upkeep.local.pop(entry.job_id, None)
            self._upkeep.observed_end(entry, JobStatus.CANCELLED, None, self._clock.now())
            if payload is not None:
                await asyncio.to_thread(self._codec.discard, payload)
            return
        await self._upkeep.conclude(entry, outcome, payload)

    async def _prepare(self, entry: LocalJob, payload: bytes | None) -> ports.PreparedTask:
        handler = self._handlers.get(entry.job_type)
        if handler is None or payload is None:
            # Only a replica of another version could have queued this: fail it for what it is.
            raise WorkerError(f"this replica cannot run a {entry.job_type!r} job without its input")
        job_input = await asyncio.to_thread(self._codec.decode, payload)
        return await handler.prepare(job_input)
