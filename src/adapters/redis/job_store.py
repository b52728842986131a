"""JobStore in Redis: any replica sharing the Redis answers /status for any job.

Layout, under `key_prefix`:
- `<prefix>job:<id>`: a hash, one field per job attribute (absent = None); `result` is UTF-8 JSON.
  Finished jobs get a key expiry (result or failure TTL), so Redis itself drops them.
- `<prefix>leases`: a sorted set of active job ids scored by lease expiry, so reaping reads only
  the expired head of the set.

Every state change is one Lua script, so the status check and the write are atomic: of a cancel
and a completion racing, the second script sees a final status and reports an illegal transition.
Scripts compare numbers with `tonumber` but only ever store strings Python formatted, because Lua
would print doubles with 14 digits and lose precision. The scripts touch job keys they derive from
ids (reaping), which a single Redis or a primary/replica pair allows but Redis Cluster does not.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

from adapters.job_json import encode_result
from application.errors import DependencyUnavailable, WorkerLost
from application.ports import JobStore
from domain.errors import IllegalTransition, NotFound, ValidationFailed
from domain.jobs import Job, JobFailure, JobStatus, check_outcome

# The attributes scripts hand back (everything but the result, which can be megabytes).
_FIELDS = (
    "id",
    "type",
    "status",
    "created_at",
    "progress",
    "message",
    "started_at",
    "finished_at",
    "error_code",
    "error_message",
    "owner",
    "lease_expires_at",
)
_SNAPSHOT = "local function snapshot(key) return redis.call('HMGET', key, {}) end\n".format(
    ", ".join(f"'{f}'" for f in _FIELDS)
)

# KEYS: job, leases. ARGV: id, lease ('' = none), then field/value pairs.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) end
return 1
"""

# KEYS: job, leases. ARGV: id, now, owner, lease.
_START = (
    _SNAPSHOT
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status ~= 'queued' then return {'illegal', status} end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[2], 'owner', ARGV[3],
           'lease_expires_at', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return {'ok', snapshot(KEYS[1]), redis.call('HGET', KEYS[1], 'result')}
"""
)

# KEYS: job, leases. ARGV: id, lease, progress ('' = none), '1' when a message is given, message.
_HEARTBEAT = (
    _SNAPSHOT
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status == 'queued' or status == 'running' then
  local lease = redis.call('HGET', KEYS[1], 'lease_expires_at')
  if (not lease) or tonumber(ARGV[2]) > tonumber(lease) then
    redis.call('HSET', KEYS[1], 'lease_expires_at', ARGV[2])
    redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  end
  if status == 'running' then
    if ARGV[3] ~= '' then
      local progress = tonumber(redis.call('HGET', KEYS[1], 'progress') or '0')
      if tonumber(ARGV[3]) > progress then redis.call('HSET', KEYS[1], 'progress', ARGV[3]) end
    end
    if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'message', ARGV[5]) end
  end
end
return {'ok', snapshot(KEYS[1]), redis.call('HGET', KEYS[1], 'result')}
"""
)

# KEYS: job, leases. ARGV: id, status, now, ttl ms, result, error code, error message.
_FINISH = (
    _SNAPSHOT
    + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
if status ~= 'queued' and status ~= 'running' then return {'illegal', status} end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'finished_at', ARGV[3])
redis.call('HDEL', KEYS[1], 'lease_expires_at')
if ARGV[2] == 'completed' then redis.call('HSET', KEYS[1], 'progress', '1.0', 'result', ARGV[5]) end
if ARGV[2] == 'failed' then redis.call('HSET', KEYS[1], 'error_code', ARGV[6], 'error_message', ARGV[7]) end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'ok', snapshot(KEYS[1])}
"""
)

# KEYS: leases. ARGV: now, job key prefix, error code, error message, ttl ms, batch size.
_REAP = (
    _SNAPSHOT
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[6]))
local reaped = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[2] .. id
  local status = redis.call('HGET', key, 'status')
  if status == 'queued' or status == 'running' then
    redis.call('HSET', key, 'status', 'failed', 'finished_at', ARGV[1], 'error_code', ARGV[3],
               'error_message', ARGV[4])
    redis.call('HDEL', key, 'lease_expires_at')
    redis.call('PEXPIRE', key, ARGV[5])
    table.insert(reaped, snapshot(key))
  end
end
return {#ids, reaped}
"""
)

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
    return _job(dict(zip(_FIELDS, values, strict=True)), result)


class RedisJobStore(JobStore):
    """Jobs in Redis hashes, transitions in Lua scripts, TTLs as key expiry.

    The client does not retry on its own: a transition script whose reply was lost may have run,
    and running it again would report an illegal transition for a change that in fact succeeded.
    A failed call raises DependencyUnavailable and the caller decides.
    """

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str = "mlworker:",
        result_ttl_seconds: float = 86400,
        failure_ttl_seconds: float = 604800,
        connect_timeout_seconds: float = 5.0,
        socket_timeout_seconds: float = 30.0,
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
        # No I/O here: the client connects on first use, so a store built while Redis is down
        # still constructs, and reports the outage from check() and each call.
        self._pool: aioredis.BlockingConnectionPool[aioredis.Connection] = (
            aioredis.BlockingConnectionPool.from_url(
                url,
                # Bounded, and callers past the bound wait for a connection rather than fail.
                max_connections=max_connections,
                timeout=connect_timeout_seconds + socket_timeout_seconds,
                socket_connect_timeout=connect_timeout_seconds,
                socket_timeout=socket_timeout_seconds,
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
        self._create = self._redis.register_script(_CREATE)
        self._start = self._redis.register_script(_START)
        self._heartbeat = self._redis.register_script(_HEARTBEAT)
        self._finish = self._redis.register_script(_FINISH)
        self._reap = self._redis.register_script(_REAP)

    def _key(self, job_id: str) -> str:
        return f"{self._prefix}job:{job_id}"

    async def start(self) -> None:
        """Ping Redis; DependencyUnavailable when it is down (the store stays usable once it is back)."""
        async with _translated():
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose
        await self._pool.disconnect()

    async def check(self) -> str | None:
        try:
            async with _translated():
                await self._redis.ping()
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
        if job.result is not None:
            values["result"] = encode_result(job.result)
        if job.error is not None:
            values["error_code"] = job.error.code
            values["error_message"] = job.error.message
        lease = "" if job.lease_expires_at is None else values["lease_expires_at"]
        args: list[str | bytes] = [job.id, lease]
        for name, value in values.items():
            args += [name, value]
        async with _translated():
            created = await self._create(keys=[self._key(job.id), self._leases_key], args=args)
        if not created:
            raise ValidationFailed(f"job {job.id!r} already exists")

    async def get(self, job_id: str) -> Job | None:
        async with _translated():
            raw: dict[bytes, bytes] = await self._redis.hgetall(self._key(job_id))
        if not raw:
            return None
        fields = {name.decode(): value for name, value in raw.items()}
        return _job(fields, fields.get("result"))

    async def start_job(self, job_id: str, *, owner: str, now: float, lease_seconds: float) -> Job:
        args = [job_id, _num(now), owner, _num(now + lease_seconds)]
        async with _translated():
            reply = await self._start(keys=[self._key(job_id), self._leases_key], args=args)
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
        async with _translated():
            reply = await self._heartbeat(keys=[self._key(job_id), self._leases_key], args=args)
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
        async with _translated():
            reply = await self._finish(keys=[self._key(job_id), self._leases_key], args=args)
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
            async with _translated():
                scanned, snapshots = await self._reap(keys=[self._leases_key], args=args)
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
