"""The job engine's ports: the job store and its queue, a job's stored input, the handlers that run
each type of job, the scheduler the use cases submit to, and the observer metrics listen with.
(application.ports re-exports them, with every other port.)"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from domain.data import Dataset, DataSpec
from domain.jobs import Job, JobFailure, JobStatus, RequestEcho


@dataclass(frozen=True)
class JobInput:
    """What a job needs to run on whichever replica claims it: the checked spec and the caller's
    identifiers, and its data either loaded (`dataset`, inline data, stored with the job) or as the
    request gave it (`data`, a table: read again by the replica that runs it)."""

    spec: Any
    echo: RequestEcho
    dataset: Dataset[Any] | None = None
    data: DataSpec | None = None


class JobInputCodec(Protocol):
    """Turns a job's input into the bytes the job store keeps, and back. Blocking: call it in a
    thread. A payload too large for the store may live elsewhere (a shared directory): `discard`
    then removes it, and `sweep` removes those of jobs that ended on any replica."""

    def encode(self, job_id: str, job_input: JobInput) -> bytes: ...

    def decode(self, payload: bytes) -> JobInput: ...

    def discard(self, payload: bytes) -> None:
        """Remove what `encode` stored outside the payload itself (idempotent)."""
        ...

    @property
    def keeps_files(self) -> bool:
        """Whether any payload can live outside the store (then the reaper sweeps)."""
        ...

    def stored_elsewhere(self) -> list[str]:
        """The ids of jobs whose payload lives outside the store, written over a minute ago (a
        payload is written just before its job is stored): what the reaper sweeps."""
        ...

    def discard_job(self, job_id: str) -> None: ...


@dataclass(frozen=True)
class PreparedTask:
    """A job's computation, ready for the compute runner: task(*args, progress=...)."""

    task: Callable[..., object]
    args: tuple[Any, ...]


class JobHandler(Protocol):
    """Runs one type of job from its stored input (each use case that submits jobs is one)."""

    job_type: ClassVar[str]

    async def prepare(self, job_input: JobInput) -> PreparedTask:
        """Load what is not stored (a table) and check it; raise a WorkerError to fail the job."""
        ...


class JobScheduler(Protocol):
    """Runs submitted work as jobs: queued in the job store with their input, claimed and run by
    any replica with a free compute slot, their progress, result and final state kept there for
    any replica to answer."""

    async def submit(
        self,
        job_type: str,
        job_input: JobInput,
        *,
        tenant_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a job of `job_type` (a registered handler runs it); Busy when the queue is full.
        With `idempotency_key`, the job submitted earlier under that key, if it is still kept."""
        ...

    async def check_room(self) -> None:
        """Busy when the queue is full now (before a request's body is read)."""
        ...

    def cancelled(self, job: Job) -> None:
        """A job was just cancelled through this replica: stop it now if this replica runs it
        (others see the cancel at their heartbeat), and count it if it never started."""
        ...


class JobObserver(Protocol):
    """Hears one replica's job engine, for metrics. Called on the event loop: quick, and never
    raises. A job is queued on the replica that received it, and started (claimed) and finished
    on the replica that ran it, once per attempt; `seconds` count from the submission. A job
    that leaves a replica without an outcome is requeued (`reason`: "shutdown" by this replica,
    "lease_expired" by the reaper for a dead one) or lost (its attempts spent)."""

    def job_queued(self, job_type: str) -> None: ...

    def job_started(self, job_type: str, waited_seconds: float) -> None: ...

    def job_finished(
        self, job_type: str, status: JobStatus, error_code: str | None, seconds: float, *, started: bool
    ) -> None: ...

    def job_requeued(self, job_type: str, reason: str) -> None: ...

    def job_lost(self, job_type: str) -> None: ...

    def queue_read(self, depth: QueueDepth) -> None:
        """The store's queue as just read (any replica's jobs)."""
        ...


class NoJobObserver(JobObserver):
    """Nobody listens (the default, and the tests that count nothing)."""

    def job_queued(self, job_type: str) -> None:
        return None

    def job_started(self, job_type: str, waited_seconds: float) -> None:
        return None

    def job_finished(
        self, job_type: str, status: JobStatus, error_code: str | None, seconds: float, *, started: bool
    ) -> None:
        return None

    def job_requeued(self, job_type: str, reason: str) -> None:
        return None

    def job_lost(self, job_type: str) -> None:
        return None

    def queue_read(self, depth: QueueDepth) -> None:
        return None


@dataclass(frozen=True)
class QueueLimits:
    """How much a job store's queue holds (ML_WORKER_MAX_QUEUED_JOBS, ML_WORKER_MAX_QUEUED_MB)."""

    max_queued_jobs: int = 1000
    max_queued_bytes: int | None = None


@dataclass(frozen=True)
class QueueDepth:
    queued: int
    running: int
    payload_bytes: int


@dataclass(frozen=True)
class Claim:
    job: Job
    payload: bytes | None


class JobStore(Protocol):
    """Keeps jobs so that any replica can answer /status. Every state change is atomic and
    conditional on the current state, so a cancel racing a completion ends in exactly one final
    state. Finished jobs expire after the result TTL (completed, cancelled) or failure TTL (failed).
    """

    async def start(self) -> None:
        """Connect and run idempotent migrations."""
        ...

    async def close(self) -> None: ...

    async def check(self) -> str | None:
        """None when usable, else a short reason (for /health)."""
        ...

    async def create(
        self,
        job: Job,
        *,
        payload: bytes | None = None,
        idempotency_key: str | None = None,
        limits: QueueLimits | None = None,
    ) -> Job:
        """Put a new queued job in the queue, with `payload` (its input, opaque bytes) stored beside
        it until the job is final, and return it as stored.

        With `idempotency_key`, a job created earlier under the same key and not yet expired is
        returned instead, and nothing is created. With `limits`, Busy when `max_queued_jobs` jobs
        are queued already, or when the payloads of the active jobs plus this one would pass
        `max_queued_bytes` (checked and written in one step, so concurrent creates cannot pass
        the bounds together). ValidationFailed on a duplicate id."""
        ...

    async def claim_next(
        self, *, owner: str, now: float, lease_seconds: float, tenant_cap: int | None = None
    ) -> Claim | None:
        """Start the oldest claimable queued job (by `created_at`, then id) for `owner`: running,
        `started_at` now, a lease to `now + lease_seconds`, one more attempt; None when there is
        none. Claimable: its format is one this code reads (domain.jobs OLDEST_CLAIMABLE_FORMAT to
        JOB_FORMAT), and, with `tenant_cap`, its tenant (when it has one) runs fewer than
        `tenant_cap` jobs in this store. Exclusive: of concurrent claimers, one gets each job."""
        ...

    async def requeue(self, job_id: str, *, owner: str, refund_attempt: bool) -> Job:
        """Give a running job of `owner` back to the queue (Job.requeued), keeping its payload and
        its place by `created_at`. IllegalTransition when it is not running or runs elsewhere;
        NotFound when gone."""
        ...

    async def queue_depth(self) -> QueueDepth:
        """How many jobs wait and run, and the bytes of the active jobs' payloads."""
        ...

    async def get(self, job_id: str) -> Job | None:
        """The job, or None when unknown or expired."""
        ...

    async def start_job(self, job_id: str, *, owner: str, now: float, lease_seconds: float) -> Job:
        """queued -> running for `owner` (one more attempt): a claim of this one job.
        IllegalTransition when the job is no longer queued (e.g. cancelled); NotFound when gone."""
        ...

    async def heartbeat(
        self,
        job_id: str,
        *,
        owner: str,
        now: float,
        lease_seconds: float,
        progress: float | None = None,
        message: str | None = None,
    ) -> Job:
        """Extend the lease of a job running under `owner` and record its progress (never
        backwards); any other job is left unchanged. Returns the job as stored, whatever its
        status and owner: a caller that sees it final, queued again or run by another replica
        stops. NotFound when it is gone."""
        ...

    async def finish(
        self,
        job_id: str,
        *,
        status: JobStatus,
        now: float,
        result: Mapping[str, Any] | None = None,
        error: JobFailure | None = None,
        owner: str | None = None,
    ) -> Job:
        """Move an active job to a final status (completed needs `result`, failed needs `error`)
        and drop its payload. With `owner`, only a job running under that owner (a replica writing
        its outcome, whose job may since have been given to another). IllegalTransition when it is
        already final (its final state is kept) or not `owner`'s; NotFound when gone."""
        ...

    async def reap_expired_leases(self, *, now: float, max_attempts: int = 1) -> list[Job]:
        """Every active job whose lease expired before `now` goes back to the queue
        (Job.requeued, the attempt counted) while it has had fewer than `max_attempts` attempts,
        else fails with WORKER_LOST. Returns them as they are now stored."""
        ...

    async def payload(self, job_id: str) -> bytes | None:
        """The payload stored with an active job (None when it has none, or is final or gone)."""
        ...

    async def purge_expired(self, *, now: float) -> int:
        """Delete finished jobs past their TTL; return how many (stores with native expiry: 0)."""
        ...
