"""JobStore in Redis: any replica sharing the Redis answers /status for any job.

Layout, under `key_prefix`:
- `<prefix>job:<id>`: a hash, one field per job attribute (absent = None); `result` is UTF-8 JSON.
  Finished jobs get a key expiry (result or failure TTL), so Redis itself drops them.
- `<prefix>leases`: a sorted set of active job ids scored by lease expiry, so reaping reads only
  the expired head of the set.

Every state change is one Lua script (`scripts`), so the status check and the write are atomic: of
a cancel and a completion racing, the second script sees a final status and reports an illegal
transition. The scripts touch job keys they derive from ids (reaping), which a single Redis or a
primary/replica pair allows but Redis Cluster does not.

Every call has one deadline (`timeout_seconds`, more for a large result; see adapters.deadlines),
so a Redis that accepts connections and never answers costs a caller that long, not a hang.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import orjson
import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

from adapters.deadlines import Deadlines
from adapters.job_json import encode_result
from adapters.redis import scripts
from application.errors import DependencyUnavailable, WorkerLost
from application.ports import JobStore
from domain.errors import IllegalTransition, NotFound, ValidationFailed
from domain.jobs import Job, JobFailure, JobStatus, check_outcome

T = TypeVar("T")

# Redis replies that mean the server cannot serve us now, rather than a bug in our command.
_UNAVAILABLE_REPLIES = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "NOREPLICAS", "BUSY")


def _num(value: float) -> str:
    if not math.isfinite(value):
        raise ValidationFailed(f"job times must be finite numbers, not {value!r}")
    # repr is the shortest string that parses back to the same double.
    return repr(float(value))


def _ttl_ms(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8")


def _float(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)


def _job(fields: Mapping[str, bytes | None], result: bytes | None) -> Job:
    error_code = _text(fields.get("error_code"))
    return Job(
        id=_text(fields["id"]) or "",
        type=_text(fields["type"]) or "",
        status=JobStatus(_text(fields["status"]) or ""),
        created_at=_float(fields["created_at"]) or 0.0,
        progress=_float(fields.get("progress")) or 0.0,
        message=_text(fields.get("message")) or "",
        started_at=_float(fields.get("started_at")),
        finished_at=_float(fields.get("finished_at")),
        result=None if result is None else orjson.loads(result),
        error=(
            None if error_code is None else JobFailure(error_code, _text(fields.get("error_message")) or "")
        ),
        owner=_text(fields.get("owner")),
        lease_expires_at=_float(fields.get("lease_expires_at")),
    )


def _snapshot_job(values: Sequence[bytes | None], result: bytes | None) -> Job:
    return _job(dict(zip(scripts.FIELDS, values, strict=True)), result)


class RedisJobStore(JobStore):
    """Jobs in Redis hashes, transitions in Lua scripts, TTLs as key expiry.

    The client does not retry on its own: a transition script whose reply was lost may have run,
    and running it again would report an illegal transition for a change that in fact succeeded.
    A failed call raises DependencyUnavailable and the caller decides (the job engine treats a
    refused repeat of its own change as done).
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "mlworker:",
        result_ttl_seconds: float = 86400,
        failure_ttl_seconds: float = 604800,
        timeout_seconds: float = 2.0,
        max_connections: int = 50,
        client_name: str = "ml-worker-jobs",
        reap_batch_size: int = 500,
    ) -> None:
        if result_ttl_seconds <= 0 or failure_ttl_seconds <= 0:
            raise ValueError("job TTLs must be positive")
        self._prefix = key_prefix
        # Reaping runs in batches so that one script never blocks Redis for long.
        self._reap_batch = reap_batch_size
        self._leases_key = f"{key_prefix}leases"
        self._result_ttl = float(result_ttl_seconds)
        self._failure_ttl = float(failure_ttl_seconds)
        self._deadlines = Deadlines("Redis", timeout_seconds)
        # No I/O here: the client connects on first use, so a store built while Redis is down
        # still constructs, and reports the outage from check() and each call.
        self._pool: aioredis.BlockingConnectionPool[aioredis.Connection] = (
            aioredis.BlockingConnectionPool.from_url(
                url,
                # Bounded, and callers past the bound wait for a connection rather than fail.
                max_connections=max_connections,
                timeout=timeout_seconds,
                socket_connect_timeout=timeout_seconds,
                # No per-read timeout: each call's deadline covers the whole exchange, and a large
                # result may take longer than one read timeout would allow.
                socket_timeout=None,
                retry=Retry(NoBackoff(), 0),
                # Names the connections in CLIENT LIST.
                client_name=client_name,
                # A pooled connection idle past this is pinged before use, so a Redis restart costs
                # a reconnect rather than a failed request.
                health_check_interval=30,
                # With maintenance notifications on ("auto" by default), redis-py skips its check
                # for pooled connections the server closed, and hands them out to fail once.
                maint_notifications_config=MaintNotificationsConfig(enabled=False),
            )
        )
        self._redis: aioredis.Redis[bytes] = aioredis.Redis(connection_pool=self._pool)
        self._create = self._redis.register_script(scripts.CREATE)
        self._start = self._redis.register_script(scripts.START)
        self._heartbeat = self._redis.register_script(scripts.HEARTBEAT)
        self._finish = self._redis.register_script(scripts.FINISH)
        self._reap = self._redis.register_script(scripts.REAP)
        self._read = self._redis.register_script(scripts.READ)

    def _key(self, job_id: str) -> str:
        return f"{self._prefix}job:{job_id}"

    async def _call(self, operation: Callable[[], Awaitable[T]], seconds: float | None = None) -> T:
        async def translated() -> T:
            async with _translated():
                return await operation()

        return await self._deadlines.call(translated, seconds)

    async def start(self) -> None:
        """Ping Redis; DependencyUnavailable when it is down (the store stays usable once it is back)."""
        await self._call(self._redis.ping)

    async def close(self) -> None:
        await self._deadlines.close()
        await self._redis.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose
        await self._pool.disconnect()

    async def check(self) -> str | None:
        try:
            await self._call(self._redis.ping)
        except DependencyUnavailable as exc:
            return exc.message
        return None

    async def create(self, job: Job) -> None:
        if job.status is not JobStatus.QUEUED:
            raise ValidationFailed(f"a new job must be queued, not {job.status.value}")
        values: dict[str, str | bytes] = {
            "id": job.id,
            "type": job.type,
            "status": job.status.value,
            "created_at": _num(job.created_at),
            "progress": _num(job.progress),
            "message": job.message,
        }
        optional: dict[str, float | None] = {
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "lease_expires_at": job.lease_expires_at,
        }
        values.update({name: _num(value) for name, value in optional.items() if value is not None})
        if job.owner is not None:
            values["owner"] = job.owner
        encoded = b"" if job.result is None else encode_result(job.result)
        if job.result is not None:
            values["result"] = encoded
        if job.error is not None:
            values["error_code"] = job.error.code
            values["error_message"] = job.error.message
        lease = "" if job.lease_expires_at is None else values["lease_expires_at"]
        args: list[str | bytes] = [job.id, lease]
        for name, value in values.items():
            args += [name, value]
        keys = [self._key(job.id), self._leases_key]
        created = await self._call(
            lambda: self._create(keys=keys, args=args), self._deadlines.for_payload(len(encoded))
        )
        if not created:
            raise ValidationFailed(f"job {job.id!r} already exists")

    async def get(self, job_id: str) -> Job | None:
        key = self._key(job_id)
        reply = await self._call(lambda: self._read(keys=[key], args=[str(scripts.INLINE_RESULT_BYTES)]))
        if not reply:
            return None
        snapshot, size, result = reply
        if size and result is None:
            # Too large to come back with the job: read on its own, with the time its size needs.
            result = await self._call(
                lambda: self._redis.hget(key, "result"), self._deadlines.for_payload(size)
            )
            if result is None:
                return None  # expired between the two reads
        return _snapshot_job(snapshot, result)

    async def start_job(self, job_id: str, *, owner: str, now: float, lease_seconds: float) -> Job:
        args = [job_id, _num(now), owner, _num(now + lease_seconds)]
        keys = [self._key(job_id), self._leases_key]
        reply = await self._call(lambda: self._start(keys=keys, args=args))
        _raise_for(reply, job_id, JobStatus.RUNNING)
        return _snapshot_job(reply[1], reply[2])

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
        # Clamped as Job.with_progress clamps, so every store records the same value.
        clamped = "" if progress is None else repr(min(1.0, max(0.0, float(progress))))
        args = [job_id, _num(now + lease_seconds), clamped, "0" if message is None else "1", message or ""]
        keys = [self._key(job_id), self._leases_key]
        reply = await self._call(lambda: self._heartbeat(keys=keys, args=args))
        _raise_for(reply, job_id, None)
        return _snapshot_job(reply[1], reply[2])

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
        encoded = b"" if result is None else encode_result(result)
        ttl = self._failure_ttl if status is JobStatus.FAILED else self._result_ttl
        args: list[str | bytes] = [
            job_id,
            status.value,
            _num(now),
            _ttl_ms(ttl),
            encoded,
            "" if error is None else error.code,
            "" if error is None else error.message,
        ]
        keys = [self._key(job_id), self._leases_key]
        reply = await self._call(
            lambda: self._finish(keys=keys, args=args), self._deadlines.for_payload(len(encoded))
        )
        _raise_for(reply, job_id, status)
        return _snapshot_job(reply[1], encoded if result is not None else None)

    async def reap_expired_leases(self, *, now: float) -> list[Job]:
        args = [
            _num(now),
            f"{self._prefix}job:",
            WorkerLost.code,
            "the worker running this job stopped sending heartbeats",
            _ttl_ms(self._failure_ttl),
            str(self._reap_batch),
        ]
        reaped: list[Job] = []
        while True:
            scanned, snapshots = await self._call(lambda: self._reap(keys=[self._leases_key], args=args))
            reaped += [_snapshot_job(values, None) for values in snapshots]
            if scanned < self._reap_batch:
                return reaped

    async def purge_expired(self, *, now: float) -> int:
        # Finished jobs carry a key expiry; Redis deletes them itself.
        return 0


def _raise_for(reply: Sequence[Any], job_id: str, target: JobStatus | None) -> None:
    tag = reply[0].decode()
    if tag == "missing":
        raise NotFound(f"job {job_id!r} not found")
    if tag == "illegal":
        current = reply[1].decode()
        wanted = "" if target is None else f" become {target.value}"
        raise IllegalTransition(f"a {current} job cannot{wanted}")


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        raise DependencyUnavailable(f"Redis is unavailable: {exc}") from exc
    except redis_errors.ResponseError as exc:
        if str(exc).startswith(_UNAVAILABLE_REPLIES):
            raise DependencyUnavailable(f"Redis cannot serve the job store: {exc}") from exc
        raise
