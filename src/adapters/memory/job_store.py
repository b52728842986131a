"""JobStore kept in this process's memory.

Per process: with several replicas, or several uvicorn workers, a job is only visible to the
process that created it, so `/status` on another replica answers 404, and its queue is this
process's alone: nothing survives a restart. Use the Redis or PostgreSQL store for anything but a
single-process deployment (and as the test double it is meant to be).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from adapters.job_json import encode_result
from adapters.system_clock import SystemClock
from application.errors import Busy, WorkerLost
from application.ports import Claim, Clock, JobStore, QueueDepth, QueueLimits
from domain.errors import IllegalTransition, NotFound, ValidationFailed
from domain.jobs import ACTIVE_STATES, Job, JobFailure, JobStatus, check_outcome


@dataclass(frozen=True)
class _Entry:
    job: Job
    # None while active; finished jobs carry the time after which they are gone.
    expires_at: float | None = None
    payload: bytes | None = None
    idempotency_key: str | None = None


def _detached_json(result: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round trip of `result`, kept for parity, not for JSON safety: the fake refuses what
    the real stores refuse, hands back what they hand back (lists for tuples), and a caller that
    mutates its dict after `finish` does not change the stored job."""
    data: dict[str, Any] = orjson.loads(encode_result(result))
    return data


def _busy(what: str, setting: str) -> Busy:
    return Busy(f"the job queue is full ({what}, {setting}); retry later")


class InMemoryJobStore(JobStore):
    """A dict of jobs guarded by one asyncio lock.

    Expiry is checked when a job is read (so an expired job is never returned) and expired
    entries are deleted by `purge_expired`. `get` has no `now` argument, so reads use `clock`
    (the system clock unless a test passes a fake one). The queue is the queued entries in
    (created_at, id) order: a scan per claim, which is plenty for one process's queue.
    """

    def __init__(
        self,
        result_ttl_seconds: float = 86400,
        failure_ttl_seconds: float = 604800,
        *,
        clock: Clock | None = None,
    ) -> None:
        if result_ttl_seconds <= 0 or failure_ttl_seconds <= 0:
            raise ValueError("job TTLs must be positive")
        self._result_ttl = float(result_ttl_seconds)
        self._failure_ttl = float(failure_ttl_seconds)
        self._clock: Clock = clock or SystemClock()
        self._entries: dict[str, _Entry] = {}
        self._keys: dict[str, str] = {}  # idempotency key -> job id
        # Every operation is synchronous between its awaits today; the lock keeps each one atomic
        # should an await ever be added inside (and documents the intent).
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> str | None:
        return None

    async def create(
        self,
        job: Job,
        *,
        payload: bytes | None = None,
        idempotency_key: str | None = None,
        limits: QueueLimits | None = None,
    ) -> Job:
        if job.status is not JobStatus.QUEUED:
            raise ValidationFailed(f"a new job must be queued, not {job.status.value}")
        async with self._lock:
            if idempotency_key is not None:
                earlier = self._live(self._keys.get(idempotency_key, ""))
                if earlier is not None:
                    return earlier
            if self._live(job.id) is not None:
                raise ValidationFailed(f"job {job.id!r} already exists")
            if limits is not None:
                self._check_room(limits, len(payload or b""))
            stored = job if job.result is None else replace(job, result=_detached_json(job.result))
            self._entries[job.id] = _Entry(stored, payload=payload, idempotency_key=idempotency_key)
            if idempotency_key is not None:
                self._keys[idempotency_key] = job.id
            return stored

    def _check_room(self, limits: QueueLimits, size: int) -> None:
        depth = self._depth()
        if depth.queued >= limits.max_queued_jobs:
            raise _busy(f"{limits.max_queued_jobs} jobs wait", "ML_WORKER_MAX_QUEUED_JOBS")
        if limits.max_queued_bytes is not None and depth.payload_bytes + size > limits.max_queued_bytes:
            raise _busy(f"{depth.payload_bytes} bytes of input are held", "ML_WORKER_MAX_QUEUED_MB")

    async def get(self, job_id: str) -> Job | None:
        async with self._lock:
            return self._live(job_id)

    async def start_job(self, job_id: str, *, owner: str, now: float, lease_seconds: float) -> Job:
        async with self._lock:
            return self._start(self._require(job_id), owner, now, lease_seconds)

    def _start(self, job: Job, owner: str, now: float, lease_seconds: float) -> Job:
        started = job.started(now, owner, now + lease_seconds)
        self._entries[job.id] = replace(self._entries[job.id], job=started)
        return started

    async def claim_next(
        self, *, owner: str, now: float, lease_seconds: float, tenant_cap: int | None = None
    ) -> Claim | None:
        async with self._lock:
            live = [job for job in map(self._live, list(self._entries)) if job is not None]
            running: dict[str, int] = {}
            for job in live:
                if job.status is JobStatus.RUNNING and job.tenant_id is not None:
                    running[job.tenant_id] = running.get(job.tenant_id, 0) + 1
            waiting = sorted(
                (job for job in live if job.status is JobStatus.QUEUED), key=lambda j: (j.created_at, j.id)
            )
            for job in waiting:
                capped = tenant_cap is not None and job.tenant_id is not None
                if capped and running.get(job.tenant_id or "", 0) >= (tenant_cap or 0):
                    continue
                started = self._start(job, owner, now, lease_seconds)
                return Claim(started, self._entries[job.id].payload)
            return None

    async def requeue(self, job_id: str, *, owner: str, refund_attempt: bool) -> Job:
        async with self._lock:
            job = self._require(job_id)
            if job.owner != owner:
                raise IllegalTransition(f"job {job_id!r} runs under another replica")
            back = job.requeued(refund_attempt=refund_attempt)
            self._entries[job_id] = replace(self._entries[job_id], job=back)
            return back

    async def queue_depth(self) -> QueueDepth:
        async with self._lock:
            return self._depth()

    def _depth(self) -> QueueDepth:
        queued = running = size = 0
        for entry in self._entries.values():
            if entry.job.status is JobStatus.QUEUED:
                queued += 1
            elif entry.job.status is JobStatus.RUNNING:
                running += 1
            size += len(entry.payload or b"")
        return QueueDepth(queued=queued, running=running, payload_bytes=size)

    async def payload(self, job_id: str) -> bytes | None:
        async with self._lock:
            entry = self._entries.get(job_id)
            return None if entry is None or self._live(job_id) is None else entry.payload

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
        async with self._lock:
            job = self._require(job_id)
            if job.status is not JobStatus.RUNNING or job.owner != owner:
                return job
            lease = now + lease_seconds
            # Heartbeats can arrive out of order; a late one must not shorten the lease.
            if job.lease_expires_at is not None:
                lease = max(lease, job.lease_expires_at)
            updated = replace(job, lease_expires_at=lease).with_progress(
                job.progress if progress is None else progress,
                job.message if message is None else message,
            )
            self._entries[job_id] = replace(self._entries[job_id], job=updated)
            return updated

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
        check_outcome(status, result, error)
        stored_result = None if result is None else _detached_json(result)
        async with self._lock:
            job = self._require(job_id)
            if (
                owner is not None
                and job.status in ACTIVE_STATES
                and (job.status is not JobStatus.RUNNING or job.owner != owner)
            ):
                raise IllegalTransition(f"job {job_id!r} is no longer run by {owner}")
            if status is JobStatus.COMPLETED:
                assert stored_result is not None
                final = job.completed(now, stored_result)
            elif status is JobStatus.FAILED:
                assert error is not None
                final = job.failed(now, error)
            else:
                final = job.cancelled(now)
            self._end(final, now + self._ttl(status))
            return final

    def _end(self, final: Job, expires_at: float) -> None:
        self._entries[final.id] = replace(
            self._entries[final.id], job=final, expires_at=expires_at, payload=None
        )

    async def reap_expired_leases(self, *, now: float, max_attempts: int = 1) -> list[Job]:
        failure = JobFailure(WorkerLost.code, "the worker running this job stopped sending heartbeats")
        async with self._lock:
            reaped: list[Job] = []
            for job_id, entry in list(self._entries.items()):
                job = entry.job
                if job.status is not JobStatus.RUNNING or job.lease_expires_at is None:
                    continue
                if job.lease_expires_at >= now:
                    continue
                if job.attempts < max_attempts:
                    back = job.requeued(refund_attempt=False)
                    self._entries[job_id] = replace(entry, job=back)
                    reaped.append(back)
                else:
                    failed = job.failed(now, failure)
                    self._end(failed, now + self._failure_ttl)
                    reaped.append(failed)
            return reaped

    async def purge_expired(self, *, now: float) -> int:
        async with self._lock:
            expired = [
                job_id
                for job_id, entry in self._entries.items()
                if entry.expires_at is not None and entry.expires_at <= now
            ]
            for job_id in expired:
                key = self._entries.pop(job_id).idempotency_key
                if key is not None and self._keys.get(key) == job_id:
                    del self._keys[key]
            return len(expired)

    def _ttl(self, status: JobStatus) -> float:
        return self._failure_ttl if status is JobStatus.FAILED else self._result_ttl

    def _live(self, job_id: str) -> Job | None:
        entry = self._entries.get(job_id)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= self._clock.now():
            return None
        return entry.job

    def _require(self, job_id: str) -> Job:
        job = self._live(job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} not found")
        return job
