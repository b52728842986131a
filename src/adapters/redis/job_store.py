"""JobStore in Redis: a durable job queue that any replica sharing the Redis claims from and
answers /status from.

Layout, under `key_prefix`:
- `<prefix>job:<id>`: a hash, one field per job attribute (absent = None; see records); `result`
  is UTF-8 JSON. Besides the Job's attributes: `format` (the record's layout, domain.jobs
  JOB_FORMAT; absent = 1, a record written before the queue), `payload_bytes` (its payload's size
  while it has one) and `idem_key` (the name of its idempotency key). Finished jobs get a key
  expiry (result or failure TTL), so Redis itself drops them.
- `<prefix>payload:<id>`: the job's input bytes, apart so that /status never reads them; deleted
  when the job becomes final. `<prefix>upload:<uuid>` holds a large payload for the moment between
  its write and the create that moves it into place (with an expiry, should that create never run).
- `<prefix>queue`: a sorted set of the queued job ids scored by created_at (equal scores in id
  order), the order claims take them in.
- `<prefix>leases`: a sorted set of active job ids scored by lease expiry, so reaping reads only
  the expired head of the set.
- `<prefix>running`: a hash of the running job ids -> their tenant ('' for none);
  `<prefix>running_by_tenant`: a hash of tenant -> running jobs (only tenants with some), which
  the tenant cap reads.
- `<prefix>queue_stats`: a hash whose `payload_bytes` is the size of the active jobs' payloads, which
  the queue's byte limit reads.
- `<prefix>idem:<sha256 of the key>`: an idempotency key -> its job's id, expiring with the job.

Every state change is one Lua script (`scripts`, `queue_scripts`), so the check and the write are
atomic: of a cancel and a completion racing, the second script sees a final status and reports an
illegal transition; of concurrent claimers, each job goes to one; of concurrent creates, no two pass
a limit together. The scripts touch job keys they derive from ids (claiming, reaping), which a
single Redis or a primary/replica pair allows but Redis Cluster does not.

A replica of the code before the queue (during a rolling update) may end a job this code queued or
claimed, with scripts that know neither the running count nor payloads. What it leaves behind is
settled later: a claim drops queue entries whose job no longer waits, and each reaping pass checks
a batch of the running hash, releasing jobs that no longer run and dropping their payloads and
bytes. The counts assume Redis never evicts these keys: run it with `maxmemory-policy
noeviction`. (A job whose payload key was evicted anyway is claimed with no payload, for its runner
to fail.)

Durability: the queue is as durable as Redis persistence. With `appendonly yes` and
`appendfsync everysec`, a Redis crash loses at most about the last second of writes (a job
accepted in that second, or a claim or finish, which the lease reaper then sorts out); without
persistence a restart loses every queued job.

Every call has one deadline (`timeout_seconds`, more for a large result or payload; see
adapters.deadlines), so a Redis that accepts connections and never answers costs a caller that
long, not a hang.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import redis.asyncio as aioredis

from adapters.deadlines import Deadlines
from adapters.job_json import encode_result
from adapters.redis import queue_scripts, scripts
from adapters.redis.connection import connection_pool, translated_errors
from adapters.redis.records import new_fields, num, snapshot_job, ttl_ms
from adapters.redis.replies import busy, raise_for, refused_early
from application.errors import DependencyUnavailable, WorkerLost
from application.ports import Claim, JobStore, QueueDepth, QueueLimits
from domain.errors import NotFound, ValidationFailed
from domain.jobs import JOB_FORMAT, OLDEST_CLAIMABLE_FORMAT, Job, JobFailure, JobStatus, check_outcome

T = TypeVar("T")

# A staged payload outlives the create that should move it by this much before Redis drops it.
_STAGED_GRACE_SECONDS = 60.0


class RedisJobStore(JobStore):
    """Jobs in Redis hashes, the queue in sorted sets, transitions in Lua scripts, TTLs as key expiry.

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
        self._shared_keys = [f"{key_prefix}{name}" for name in scripts.SHARED_KEYS]
        self._repair_cursor = "0"
        self._result_ttl = float(result_ttl_seconds)
        self._failure_ttl = float(failure_ttl_seconds)
        self._deadlines = Deadlines("Redis", timeout_seconds)
        self._pool = connection_pool(url, timeout_seconds, max_connections, client_name)
        self._redis: aioredis.Redis[bytes] = aioredis.Redis(connection_pool=self._pool)
        register = self._redis.register_script
        self._create = register(queue_scripts.CREATE)
        self._claim = register(queue_scripts.CLAIM)
        self._requeue = register(queue_scripts.REQUEUE)
        self._reap = register(queue_scripts.REAP)
        self._depth = register(queue_scripts.DEPTH)
        self._start = register(scripts.START)
        self._heartbeat = register(scripts.HEARTBEAT)
        self._finish = register(scripts.FINISH)
        self._read = register(scripts.READ)
        self._read_payload_script = register(scripts.READ_PAYLOAD)

    def _key(self, job_id: str) -> str:
        return f"{self._prefix}job:{job_id}"

    def _payload_key(self, job_id: str) -> str:
        return f"{self._prefix}payload:{job_id}"

    def _keys(self, job_id: str, *, payload: bool = False) -> list[str]:
        own = [self._key(job_id)] + ([self._payload_key(job_id)] if payload else [])
        return self._shared_keys + own

    async def _call(self, operation: Callable[[], Awaitable[T]], seconds: float | None = None) -> T:
        async def translated() -> T:
            async with translated_errors():
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
        encoded = None if job.result is None else encode_result(job.result)
        values = new_fields(job, encoded)
        idem_key = (
            ""
            if idempotency_key is None
            else f"{self._prefix}idem:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"
        )
        staged = f"{self._prefix}upload:{uuid.uuid4().hex}"
        size = 0 if payload is None else len(payload)
        mode = "none" if payload is None else "inline" if size <= scripts.INLINE_BYTES else "staged"
        args: list[str | bytes] = [
            job.id,
            values["created_at"],
            values.get("lease_expires_at", ""),
            "" if limits is None else str(limits.max_queued_jobs),
            "" if limits is None or limits.max_queued_bytes is None else str(limits.max_queued_bytes),
            mode,
            payload if mode == "inline" and payload is not None else str(size),
            "0" if idempotency_key is None else "1",
            f"{self._prefix}job:",
        ]
        for name, value in values.items():
            args += [name, value]
        keys = [*self._keys(job.id, payload=True), idem_key or self._key(job.id), staged]
        inline = size if mode == "inline" else 0
        seconds = self._deadlines.for_payload(inline + len(encoded or b""))
        # An idempotency key's job may expire between the script naming it and our read of it;
        # the key is then free, and the next round creates the job.
        for _ in range(3):
            if mode == "staged":
                assert payload is not None
                # Not with an idempotency key: its job, if kept, is the answer even to a full queue.
                if limits is not None and idempotency_key is None:
                    early = refused_early(await self.queue_depth(), size, limits)
                    if early is not None:
                        raise early
                await self._stage(staged, payload, seconds)
            reply = await self._call(lambda: self._create(keys=keys, args=args), seconds)
            tag = reply[0].decode()
            if tag == "created":
                return job
            if tag == "existing":
                existing = await self.get(reply[1].decode())
                if existing is not None:
                    return existing
                continue
            if tag == "duplicate":
                raise ValidationFailed(f"job {job.id!r} already exists")
            if tag == "busy":
                raise busy(reply[1].decode(), int(reply[2]), size, limits)
            raise DependencyUnavailable("Redis dropped the job's payload before the job was created")
        raise DependencyUnavailable("the job of this idempotency key kept expiring while it was read")

    async def _stage(self, key: str, payload: bytes, create_seconds: float) -> None:
        # Written apart from the create script, which would otherwise copy it into its own memory.
        # It expires unless the create moves it into place, should that create never run.
        seconds = self._deadlines.for_payload(len(payload))
        expiry = int(ttl_ms(seconds + create_seconds + _STAGED_GRACE_SECONDS))
        await self._call(lambda: self._redis.set(key, payload, px=expiry), seconds)

    async def claim_next(
        self, *, owner: str, now: float, lease_seconds: float, tenant_cap: int | None = None
    ) -> Claim | None:
        rank = 0
        while True:
            args = [
                f"{self._prefix}job:",
                f"{self._prefix}payload:",
                num(now),
                owner,
                num(now + lease_seconds),
                "" if tenant_cap is None else str(tenant_cap),
                str(OLDEST_CLAIMABLE_FORMAT),
                str(JOB_FORMAT),
                str(queue_scripts.CLAIM_WINDOW),
                str(rank),
                str(queue_scripts.CLAIM_SCAN_PER_CALL),
                str(scripts.INLINE_BYTES),
            ]
            reply = await self._call(self._claim_script(args))
            tag = reply[0].decode()
            if tag == "none":
                return None
            if tag == "more":
                rank = int(reply[1])
                continue
            job = snapshot_job(reply[1])
            size, payload = reply[2], reply[3]
            if size is not None and payload is None:
                # Too large to come back with the claim: read on its own, with the time its size
                # needs. Should that read fail, the job is claimed all the same, and its lease
                # runs out for the reaper to give it to another.
                payload = await self._read_payload(job.id, int(size))
            return Claim(job, payload)

    def _claim_script(self, args: list[str]) -> Callable[[], Awaitable[Any]]:
        return lambda: self._claim(keys=self._shared_keys, args=args)

    def _reap_script(self, args: list[str]) -> Callable[[], Awaitable[Any]]:
        return lambda: self._reap(keys=self._shared_keys, args=args)

    async def _read_payload(self, job_id: str, size: int) -> bytes | None:
        key = self._payload_key(job_id)
        payload: bytes | None = await self._call(
            lambda: self._redis.get(key), self._deadlines.for_payload(size)
        )
        return payload

    async def requeue(self, job_id: str, *, owner: str, refund_attempt: bool) -> Job:
        args = [job_id, owner, "1" if refund_attempt else "0"]
        reply = await self._call(lambda: self._requeue(keys=self._keys(job_id), args=args))
        raise_for(reply, job_id, JobStatus.QUEUED)
        return snapshot_job(reply[1])

    async def queue_depth(self) -> QueueDepth:
        queued, running, payload_bytes = await self._call(lambda: self._depth(keys=self._shared_keys))
        return QueueDepth(int(queued), int(running), int(payload_bytes))

    async def payload(self, job_id: str) -> bytes | None:
        key = self._payload_key(job_id)
        reply = await self._call(
            lambda: self._read_payload_script(keys=[key], args=[str(scripts.INLINE_BYTES)])
        )
        if not reply:
            return None
        size, payload = reply
        return await self._read_payload(job_id, int(size)) if payload is None else bytes(payload)

    async def get(self, job_id: str) -> Job | None:
        key = self._key(job_id)
        reply = await self._call(lambda: self._read(keys=[key], args=[str(scripts.INLINE_BYTES)]))
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
        return snapshot_job(snapshot, result)

    async def start_job(self, job_id: str, *, owner: str, now: float, lease_seconds: float) -> Job:
        args = [job_id, num(now), owner, num(now + lease_seconds)]
        reply = await self._call(lambda: self._start(keys=self._keys(job_id), args=args))
        raise_for(reply, job_id, JobStatus.RUNNING)
        return snapshot_job(reply[1])

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
        lease = num(now + lease_seconds)
        args = [job_id, owner, lease, clamped, "0" if message is None else "1", message or ""]
        args.append(str(scripts.INLINE_BYTES))
        reply = await self._call(lambda: self._heartbeat(keys=self._keys(job_id), args=args))
        raise_for(reply, job_id, None)
        snapshot, size, result = reply[1:]
        if size and result is None:
            # A final job's large result, read on its own as `get` does.
            result = await self._call(
                lambda: self._redis.hget(self._key(job_id), "result"), self._deadlines.for_payload(size)
            )
            if result is None:
                raise NotFound(f"job {job_id!r} not found")  # expired between the two reads
        return snapshot_job(snapshot, result)

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
        encoded = b"" if result is None else encode_result(result)
        ttl = self._failure_ttl if status is JobStatus.FAILED else self._result_ttl
        args: list[str | bytes] = [
            job_id,
            status.value,
            num(now),
            ttl_ms(ttl),
            encoded,
            "" if error is None else error.code,
            "" if error is None else error.message,
            "0" if owner is None else "1",
            owner or "",
        ]
        keys = self._keys(job_id, payload=True)
        reply = await self._call(
            lambda: self._finish(keys=keys, args=args), self._deadlines.for_payload(len(encoded))
        )
        raise_for(reply, job_id, status)
        return snapshot_job(reply[1], encoded if result is not None else None)

    async def reap_expired_leases(self, *, now: float, max_attempts: int = 1) -> list[Job]:
        args = [
            num(now),
            f"{self._prefix}job:",
            f"{self._prefix}payload:",
            WorkerLost.code,
            "the worker running this job stopped sending heartbeats",
            ttl_ms(self._failure_ttl),
            str(self._reap_batch),
            str(max_attempts),
        ]
        reaped: list[Job] = []
        # Each pass also checks one batch of the running jobs, going on next pass where it stopped.
        args.append(self._repair_cursor)
        while True:
            scanned, snapshots, cursor = await self._call(self._reap_script(args))
            reaped += [snapshot_job(values) for values in snapshots]
            if args[-1]:
                self._repair_cursor = cursor.decode()
                args[-1] = ""
            if scanned < self._reap_batch:
                return reaped

    async def purge_expired(self, *, now: float) -> int:
        # Finished jobs carry a key expiry; Redis deletes them itself.
        return 0
