"""JobStore kept in this process's memory.

Per process: with several replicas, or several uvicorn workers, a job is only visible to the
process that created it, so `/status` on another replica answers 404. Use the Redis or PostgreSQL
store for anything but a single-process deployment (and as the test double it is meant to be).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from adapters.job_json import encode_result
from adapters.system_clock import SystemClock
from application.errors import WorkerLost
from application.ports import Clock, JobStore
from domain.errors import NotFound, ValidationFailed
from domain.jobs import ACTIVE_STATES, Job, JobFailure, JobStatus, check_outcome


@dataclass(frozen=True)
class _Entry:
    job: Job
    # None while active; finished jobs carry the time after which they are gone.
    expires_at: float | None = None


def _detached_json(result: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round trip of `result`: the fake then accepts exactly what the real stores accept
    and later mutations by the caller do not reach the stored job."""
    data: dict[str, Any] = orjson.loads(encode_result(result))
    return data


class InMemoryJobStore(JobStore):
    """A dict of jobs guarded by one asyncio lock.

    Expiry is checked when a job is read (so an expired job is never returned) and expired
    entries are deleted by `purge_expired`. `get` has no `now` argument, so reads use `clock`
    (the system clock unless a test passes a fake one).
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
        # Every operation is synchronous between its awaits today; the lock keeps each one atomic
        # should an await ever be added inside (and documents the intent).
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def check(self) -> str | None:
        return None

    async def create(self, job: Job) -> None:
        if job.status is not JobStatus.QUEUED:
            raise ValidationFailed(f"a new job must be queued, not {job.status.value}")
        async with self._lock:
            if self._live(job.id) is not None:
                raise ValidationFailed(f"job {job.id!r} already exists")
            stored = job if job.result is None else replace(job, result=_detached_json(job.result))
            self._entries[job.id] = _Entry(stored)

    async def get(self, job_id: str) -> Job | None:
        async with self._lock:
            return self._live(job_id)

    async def start_job(self, job_id: str, *, owner: str, now: float, lease_seconds: float) -> Job:
        async with self._lock:
            job = self._require(job_id)
            started = job.started(now, owner, now + lease_seconds)
            self._entries[job_id] = _Entry(started)
            return started

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
            if job.status not in ACTIVE_STATES:
                return job
            lease = now + lease_seconds
            # Heartbeats can arrive out of order; a late one must not shorten the lease.
            if job.lease_expires_at is not None:
                lease = max(lease, job.lease_expires_at)
            updated = replace(job, lease_expires_at=lease)
            if job.status is JobStatus.RUNNING:
                updated = updated.with_progress(
                    job.progress if progress is None else progress,
                    job.message if message is None else message,
                )
            self._entries[job_id] = _Entry(updated)
            return updated

    async def finish(
        self,
        job_id: str,
        *,
        status: JobStatus,
        now: float,
        result: Mapping[str, Any] | None = None,
        error: JobFailure | None = None,
    ) -> Job:
        check_outcome(status, result, error)
        stored_result = None if result is None else _detached_json(result)
        async with self._lock:
            job = self._require(job_id)
            if status is JobStatus.COMPLETED:
                assert stored_result is not None
                final = job.completed(now, stored_result)
            elif status is JobStatus.FAILED:
                assert error is not None
                final = job.failed(now, error)
            else:
                final = job.cancelled(now)
            self._entries[job_id] = _Entry(final, now + self._ttl(status))
            return final

    async def reap_expired_leases(self, *, now: float) -> list[Job]:
        failure = JobFailure(WorkerLost.code, "the worker running this job stopped sending heartbeats")
        async with self._lock:
            reaped: list[Job] = []
            for job_id, entry in list(self._entries.items()):
                job = entry.job
                if (
                    job.status in ACTIVE_STATES
                    and job.lease_expires_at is not None
                    and job.lease_expires_at < now
                ):
                    failed = job.failed(now, failure)
                    self._entries[job_id] = _Entry(failed, now + self._failure_ttl)
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
                del self._entries[job_id]
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
