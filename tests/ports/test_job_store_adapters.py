"""What is particular to one JobStore adapter: outage translation, Redis keys and expiry, the
PostgreSQL migration. The shared contract is in test_job_store_conformance.py."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
import redis.asyncio as aioredis

from adapters.postgres.job_store import PostgresJobStore
from adapters.redis import queue_scripts
from adapters.redis.job_store import RedisJobStore
from application.errors import Busy, DependencyUnavailable
from application.ports import JobStore, QueueDepth, QueueLimits
from domain.errors import ValidationFailed
from domain.jobs import JOB_FORMAT, Job, JobFailure, JobStatus

NOW = 1_700_000_000.5


def queued(job_id: str, *, lease: float = 60.0) -> Job:
    return Job(
        id=job_id,
        type="segmentation",
        status=JobStatus.QUEUED,
        created_at=NOW,
        owner="replica-a",
        lease_expires_at=NOW + lease,
    )


# --- a server that is down: DependencyUnavailable, never a driver exception, and quickly -------


def _calls(store: JobStore) -> list[Callable[[], Awaitable[object]]]:
    return [
        store.start,
        lambda: store.get("job-1"),
        lambda: store.create(queued("job-1")),
        lambda: store.start_job("job-1", owner="a", now=NOW, lease_seconds=30),
        lambda: store.heartbeat("job-1", owner="a", now=NOW, lease_seconds=30, progress=0.5),
        lambda: store.finish("job-1", status=JobStatus.COMPLETED, now=NOW, result={"a": 1}),
        lambda: store.reap_expired_leases(now=NOW),
    ]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda: RedisJobStore("redis://127.0.0.1:1/0", timeout_seconds=2), id="redis-closed-port"
        ),
        pytest.param(
            # A plain postgresql:// URL, as DATABASE_URL is usually written.
            lambda: PostgresJobStore("postgresql://postgres@127.0.0.1:1/test", timeout_seconds=2),
            id="postgres-closed-port",
        ),
    ],
)
async def test_an_unreachable_server_is_dependency_unavailable(make: Callable[[], JobStore]) -> None:
    store = make()
    started = time.monotonic()
    try:
        reason = await store.check()
        assert isinstance(reason, str) and reason
        for call in _calls(store):
            with pytest.raises(DependencyUnavailable) as caught:
                await call()
            # Exactly the port's error: a driver exception would have failed raises() already.
            assert type(caught.value) is DependencyUnavailable
            assert caught.value.__cause__ is not None
    finally:
        await store.close()
    assert time.monotonic() - started < 5


@pytest.mark.integration
async def test_an_unknown_postgres_database_is_dependency_unavailable(
    postgres_target: tuple[str, str, str],
) -> None:
    url, _, _ = postgres_target
    store = PostgresJobStore(url.rsplit("/", 1)[0] + "/no_such_database_mlw", timeout_seconds=2)
    try:
        assert await store.check()
        with pytest.raises(DependencyUnavailable):
            await store.get("job-1")
    finally:
        await store.close()


def test_postgres_store_refuses_a_non_postgres_url() -> None:
    with pytest.raises(ValueError, match="postgresql"):
        PostgresJobStore("mysql://root@127.0.0.1/test")


# --- Redis ---------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_redis_expires_finished_keys_and_indexes_only_active_leases(
    redis_target: tuple[str, str],
) -> None:
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix, result_ttl_seconds=100, failure_ttl_seconds=1000)
    client = aioredis.Redis.from_url(url)
    try:
        for job_id in ("active", "completed", "failed"):
            await store.create(queued(job_id))
            await store.start_job(job_id, owner="a", now=NOW, lease_seconds=30)
        await store.heartbeat("active", owner="a", now=NOW + 5, lease_seconds=30)
        await store.finish("completed", status=JobStatus.COMPLETED, now=NOW, result={"r": 1})
        await store.finish("failed", status=JobStatus.FAILED, now=NOW, error=JobFailure("TIMEOUT", "slow"))

        assert await client.pttl(f"{prefix}job:active") == -1
        assert 99_000 < await client.pttl(f"{prefix}job:completed") <= 100_000
        assert 999_000 < await client.pttl(f"{prefix}job:failed") <= 1_000_000
        assert await client.zrange(f"{prefix}leases", 0, -1, withscores=True) == [(b"active", NOW + 5 + 30)]
        assert sorted(await client.keys(f"{prefix}*")) == sorted(
            f"{prefix}{name}".encode()
            for name in ("job:active", "job:completed", "job:failed", "leases", "running")
        )
    finally:
        await client.aclose()  # type: ignore[attr-defined]
        await store.close()


@pytest.mark.integration
async def test_redis_reaped_jobs_expire_with_the_failure_ttl(redis_target: tuple[str, str]) -> None:
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix, result_ttl_seconds=100, failure_ttl_seconds=1000)
    client = aioredis.Redis.from_url(url)
    try:
        await store.create(queued("job-1", lease=5))
        assert [job.id for job in await store.reap_expired_leases(now=NOW + 10)] == ["job-1"]
        assert 999_000 < await client.pttl(f"{prefix}job:job-1") <= 1_000_000
        assert await client.zcard(f"{prefix}leases") == 0
    finally:
        await client.aclose()  # type: ignore[attr-defined]
        await store.close()


@pytest.mark.integration
async def test_redis_replaces_pooled_connections_the_server_closed(redis_target: tuple[str, str]) -> None:
    # What a Redis restart or its idle `timeout` does: the next call must not fail for it.
    url, prefix = redis_target
    name = f"mlw-test-{prefix.replace(':', '-')}"
    store = RedisJobStore(url, key_prefix=prefix, client_name=name)
    admin = aioredis.Redis.from_url(url)
    try:
        await store.create(queued("job-1"))
        ids = [client["id"] for client in await admin.client_list() if client.get("name") == name]
        assert ids
        for client_id in ids:
            await admin.client_kill_filter(_id=client_id)
        await asyncio.sleep(0.1)
        assert await store.get("job-1") == queued("job-1")
    finally:
        await admin.aclose()  # type: ignore[attr-defined]
        await store.close()


def waiting(job_id: str, at: float = NOW, *, tenant: str | None = None) -> Job:
    return Job(id=job_id, type="segmentation", status=JobStatus.QUEUED, created_at=at, tenant_id=tenant)


@pytest.mark.integration
async def test_redis_queue_keys_follow_a_job_from_create_to_finish(redis_target: tuple[str, str]) -> None:
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix, result_ttl_seconds=100, failure_ttl_seconds=1000)
    client = aioredis.Redis.from_url(url)
    try:
        await store.create(waiting("job-1", tenant="acme"), payload=b"12345", idempotency_key="order-1")
        idem = f"{prefix}idem:{hashlib.sha256(b'order-1').hexdigest()}"
        assert await client.zrange(f"{prefix}queue", 0, -1, withscores=True) == [(b"job-1", NOW)]
        assert await client.get(f"{prefix}payload:job-1") == b"12345"
        assert await client.hgetall(f"{prefix}queue_stats") == {b"payload_bytes": b"5"}
        assert await client.get(idem) == b"job-1"
        assert await client.pttl(idem) == -1
        fields = await client.hgetall(f"{prefix}job:job-1")
        assert fields[b"format"] == str(JOB_FORMAT).encode()
        assert (fields[b"tenant_id"], fields[b"payload_bytes"], fields[b"idem_key"]) == (
            b"acme",
            b"5",
            idem.encode(),
        )
        assert b"payload" not in fields  # /status reads the hash, never the input

        await store.claim_next(owner="a", now=NOW, lease_seconds=30)
        assert await client.exists(f"{prefix}queue") == 0
        assert await client.hgetall(f"{prefix}running") == {b"job-1": b"acme"}
        assert await client.hgetall(f"{prefix}running_by_tenant") == {b"acme": b"1"}

        await store.finish("job-1", status=JobStatus.COMPLETED, now=NOW + 1, result={"r": 1}, owner="a")
        assert 99_000 < await client.pttl(idem) <= 100_000
        assert sorted(await client.keys(f"{prefix}*")) == sorted(
            [f"{prefix}job:job-1".encode(), idem.encode()]
        )
        assert b"payload_bytes" not in await client.hgetall(f"{prefix}job:job-1")
    finally:
        await client.aclose()  # type: ignore[attr-defined]
        await store.close()


@pytest.mark.integration
async def test_redis_large_payloads_are_staged_and_leave_no_upload_behind(
    redis_target: tuple[str, str],
) -> None:
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix)
    client = aioredis.Redis.from_url(url)
    big = bytes(range(256)) * 4096  # 1 MiB: written to its own key before the create script
    limits = QueueLimits(max_queued_jobs=10, max_queued_bytes=len(big) + 10)
    try:
        await store.create(waiting("big"), payload=big, limits=limits)
        with pytest.raises(Busy, match="ML_WORKER_MAX_QUEUED_MB"):
            await store.create(waiting("refused", NOW + 1), payload=big, limits=limits)
        with pytest.raises(ValidationFailed):
            await store.create(waiting("big", NOW + 1), payload=big)
        # The first job of a key answers its resubmission, however full the queue.
        first = await store.create(waiting("keyed", NOW + 2), payload=b"k", idempotency_key="once")
        again = await store.create(
            waiting("other", NOW + 3), payload=big, idempotency_key="once", limits=limits
        )
        assert again == first
        assert await client.keys(f"{prefix}upload:*") == []
        assert await client.pttl(f"{prefix}payload:big") == -1
        assert await store.get("refused") is None
        claimed = await store.claim_next(owner="a", now=NOW, lease_seconds=30)
        assert claimed is not None and claimed.payload == big
        assert (await store.queue_depth()).payload_bytes == len(big) + 1  # and "keyed"'s
    finally:
        await client.aclose()  # type: ignore[attr-defined]
        await store.close()


@pytest.mark.integration
async def test_redis_a_heartbeat_hands_back_a_large_final_result(redis_target: tuple[str, str]) -> None:
    # Past the inline size the result is read on its own, as `get` reads it.
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix)
    result = {"rows": ["x" * 1000] * 1000}
    try:
        await store.create(waiting("job-1"))
        await store.claim_next(owner="a", now=NOW, lease_seconds=30)
        done = await store.finish("job-1", status=JobStatus.COMPLETED, now=NOW, result=result, owner="a")
        assert await store.heartbeat("job-1", owner="a", now=NOW, lease_seconds=30) == done
        assert done.result == result
    finally:
        await store.close()


@pytest.mark.integration
async def test_redis_busy_names_the_setting_and_a_retry(redis_target: tuple[str, str]) -> None:
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix)
    try:
        await store.create(waiting("job-1"), limits=QueueLimits(max_queued_jobs=1))
        with pytest.raises(Busy, match="ML_WORKER_MAX_QUEUED_JOBS") as caught:
            await store.create(waiting("job-2"), limits=QueueLimits(max_queued_jobs=1))
        assert caught.value.retry_after_seconds > 0
    finally:
        await store.close()


async def _write_record(client: aioredis.Redis, prefix: str, job_id: str, at: float, **extra: str) -> None:
    """A job hash as another version of the code wrote it, waiting in the queue."""
    fields = {"id": job_id, "type": "segmentation", "status": "queued", "created_at": repr(at)}
    await client.hset(f"{prefix}job:{job_id}", mapping={**fields, **extra})
    await client.zadd(f"{prefix}queue", {job_id: at})


@pytest.mark.integration
async def test_redis_claims_skip_records_of_other_formats_but_read_them(
    redis_target: tuple[str, str],
) -> None:
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix)
    client = aioredis.Redis.from_url(url)
    try:
        # Before the queue (no format field: format 1), and from a newer replica (a format this
        # code does not know): neither is claimed, both stay queued and readable.
        await _write_record(client, prefix, "old", NOW, progress="0.0", message="", owner="gone")
        await _write_record(client, prefix, "newer", NOW + 1, format=str(JOB_FORMAT + 1))
        await store.create(waiting("current", NOW + 2))
        claimed = await store.claim_next(owner="a", now=NOW + 3, lease_seconds=30)
        assert claimed is not None and claimed.job.id == "current"
        assert await store.claim_next(owner="a", now=NOW + 3, lease_seconds=30) is None
        old = await store.get("old")
        assert old == Job(
            id="old", type="segmentation", status=JobStatus.QUEUED, created_at=NOW, owner="gone"
        )
        assert old.attempts == 0 and old.tenant_id is None
        assert (await store.get("newer")).status is JobStatus.QUEUED  # type: ignore[union-attr]
        assert (await store.queue_depth()).queued == 2
    finally:
        await client.aclose()  # type: ignore[attr-defined]
        await store.close()


@pytest.mark.integration
async def test_redis_a_lost_job_written_before_the_queue_fails_rather_than_wait_forever(
    redis_target: tuple[str, str],
) -> None:
    # Queued again it would never be claimed (format 1), so attempts left or not it fails.
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix)
    client = aioredis.Redis.from_url(url)
    try:
        fields = {"id": "old", "type": "segmentation", "status": "running", "created_at": repr(NOW)}
        await client.hset(
            f"{prefix}job:old", mapping={**fields, "owner": "gone", "lease_expires_at": repr(NOW)}
        )
        await client.zadd(f"{prefix}leases", {"old": NOW})
        [lost] = await store.reap_expired_leases(now=NOW + 1, max_attempts=3)
        assert (lost.id, lost.status, lost.attempts) == ("old", JobStatus.FAILED, 0)
        assert lost.error is not None and lost.error.code == "WORKER_LOST"
        assert await store.queue_depth() == QueueDepth(queued=0, running=0, payload_bytes=0)
    finally:
        await client.aclose()  # type: ignore[attr-defined]
        await store.close()


@pytest.mark.integration
async def test_redis_a_job_whose_payload_key_vanished_is_claimed_without_one(
    redis_target: tuple[str, str],
) -> None:
    # Eviction (a Redis not run with noeviction) can drop the payload key and keep the job: the
    # claim hands the job over with no payload, for its runner to fail rather than guess.
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix)
    client = aioredis.Redis.from_url(url)
    try:
        await store.create(waiting("job-1"), payload=b"input")
        await client.delete(f"{prefix}payload:job-1")
        claimed = await store.claim_next(owner="a", now=NOW, lease_seconds=30)
        assert claimed is not None and (claimed.job.id, claimed.payload) == ("job-1", None)
        await store.finish("job-1", status=JobStatus.FAILED, now=NOW, error=JobFailure("X", "y"), owner="a")
        assert (await store.queue_depth()).payload_bytes == 0
    finally:
        await client.aclose()  # type: ignore[attr-defined]
        await store.close()


@pytest.mark.integration
async def test_redis_claims_drop_queue_entries_whose_job_is_gone(redis_target: tuple[str, str]) -> None:
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix)
    client = aioredis.Redis.from_url(url)
    try:
        await client.zadd(f"{prefix}queue", {"evicted": NOW})
        await store.create(waiting("job-1", NOW + 1))
        claimed = await store.claim_next(owner="a", now=NOW, lease_seconds=30)
        assert claimed is not None and claimed.job.id == "job-1"
        assert await client.exists(f"{prefix}queue") == 0
    finally:
        await client.aclose()  # type: ignore[attr-defined]
        await store.close()


@pytest.mark.integration
async def test_redis_claims_look_past_a_long_capped_head_of_the_queue(redis_target: tuple[str, str]) -> None:
    # More capped jobs than one claim script scans: the claim goes on from where it stopped.
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix, timeout_seconds=15)
    client = aioredis.Redis.from_url(url)
    capped = queue_scripts.CLAIM_SCAN_PER_CALL + queue_scripts.CLAIM_WINDOW + 7
    try:
        async with client.pipeline(transaction=False) as pipe:
            for index in range(capped):
                job_id = f"acme-{index:05}"
                pipe.hset(
                    f"{prefix}job:{job_id}",
                    mapping={
                        "id": job_id,
                        "type": "segmentation",
                        "status": "queued",
                        "created_at": repr(NOW + index),
                        "format": str(JOB_FORMAT),
                        "tenant_id": "acme",
                    },
                )
                pipe.zadd(f"{prefix}queue", {job_id: NOW + index})
            await pipe.execute()
        await store.create(waiting("globex-1", NOW + capped, tenant="globex"))
        first = await store.claim_next(owner="a", now=NOW, lease_seconds=30, tenant_cap=1)
        assert first is not None and first.job.id == "acme-00000"
        second = await store.claim_next(owner="a", now=NOW, lease_seconds=30, tenant_cap=1)
        assert second is not None and second.job.id == "globex-1"
        assert await store.claim_next(owner="a", now=NOW, lease_seconds=30, tenant_cap=1) is None
        assert await client.hgetall(f"{prefix}running_by_tenant") == {b"acme": b"1", b"globex": b"1"}
    finally:
        await client.aclose()  # type: ignore[attr-defined]
        await store.close()


@pytest.mark.integration
async def test_redis_settles_what_a_replica_older_than_the_queue_leaves_behind(
    redis_target: tuple[str, str],
) -> None:
    # During a rolling update an old replica may cancel a job through its own finish script, which
    # knows neither the running count nor payloads: reaping and claiming settle what it left.
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix)
    client = aioredis.Redis.from_url(url)

    async def finish_as_before_the_queue(job_id: str) -> None:
        key = f"{prefix}job:{job_id}"
        await client.hset(key, mapping={"status": "cancelled", "finished_at": repr(NOW)})
        await client.zrem(f"{prefix}leases", job_id)
        await client.pexpire(key, 100_000)

    try:
        await store.create(waiting("running-1", tenant="acme"), payload=b"abc")
        await store.claim_next(owner="a", now=NOW, lease_seconds=30)
        await store.create(waiting("queued-1", NOW + 1), payload=b"de", idempotency_key="k")
        for job_id in ("running-1", "queued-1"):
            await finish_as_before_the_queue(job_id)
        assert await store.queue_depth() == QueueDepth(queued=1, running=1, payload_bytes=5)

        assert await store.reap_expired_leases(now=NOW) == []
        assert await store.queue_depth() == QueueDepth(queued=1, running=0, payload_bytes=2)
        assert await client.exists(f"{prefix}running_by_tenant", f"{prefix}payload:running-1") == 0

        assert await store.claim_next(owner="a", now=NOW, lease_seconds=30) is None
        assert await store.queue_depth() == QueueDepth(queued=0, running=0, payload_bytes=0)
        assert await client.keys(f"{prefix}payload:*") == []
        [idem] = await client.keys(f"{prefix}idem:*")
        assert 0 < await client.pttl(idem) <= 100_000  # expires with its job
        assert (await store.get("running-1")).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    finally:
        await client.aclose()  # type: ignore[attr-defined]
        await store.close()


@pytest.mark.integration
async def test_redis_tenant_counts_never_go_below_zero(redis_target: tuple[str, str]) -> None:
    url, prefix = redis_target
    store = RedisJobStore(url, key_prefix=prefix)
    client = aioredis.Redis.from_url(url)
    try:
        for index in range(3):
            await store.create(waiting(f"job-{index}", NOW + index, tenant="acme"))
        for _ in range(3):
            await store.claim_next(owner="a", now=NOW, lease_seconds=5)
        await store.requeue("job-0", owner="a", refund_attempt=True)
        await store.finish("job-1", status=JobStatus.CANCELLED, now=NOW)
        assert await client.hgetall(f"{prefix}running_by_tenant") == {b"acme": b"1"}
        # A count lost (say, to a flush of that one key) is not taken below zero.
        await client.delete(f"{prefix}running_by_tenant")
        [reaped] = await store.reap_expired_leases(now=NOW + 10)
        assert (reaped.id, reaped.status) == ("job-2", JobStatus.FAILED)
        assert await client.exists(f"{prefix}running_by_tenant") == 0
        assert (await store.queue_depth()).running == 0
    finally:
        await client.aclose()  # type: ignore[attr-defined]
        await store.close()


# --- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.integration
async def test_postgres_replaces_pooled_connections_the_server_closed(
    postgres_target: tuple[str, str, str],
) -> None:
    # What a database restart or failover does: the next call must not fail for it.
    url, schema, table = postgres_target
    name = f"mlw-test-{schema}-{table}"
    store = PostgresJobStore(url, schema=schema, table=table, application_name=name)
    plain_url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        await store.create(queued("job-1"))
        conn = await asyncpg.connect(plain_url)
        try:
            killed = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", name
            )
        finally:
            await conn.close()
        assert killed
        await asyncio.sleep(0.1)
        assert await store.get("job-1") == queued("job-1")
    finally:
        await store.close()


@pytest.mark.integration
async def test_postgres_migration_is_idempotent_when_replicas_start_together(
    postgres_target: tuple[str, str, str],
) -> None:
    url, schema, table = postgres_target
    plain_url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    stores = [PostgresJobStore(plain_url, schema=schema, table=table) for _ in range(8)]
    try:
        await asyncio.gather(*(store.start() for store in stores))
        await stores[0].start()
        await stores[0].create(queued("job-1"))
        assert await stores[-1].get("job-1") == queued("job-1")
    finally:
        for store in stores:
            await store.close()
    conn = await asyncpg.connect(plain_url)
    try:
        indexes = await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2", schema, table
        )
    finally:
        await conn.close()
    assert sorted(row["indexname"] for row in indexes) == sorted(
        f"{table}_{name}"
        for name in (
            "pkey",
            "lease_idx",
            "expires_idx",
            "queue_idx",
            "tenant_running_idx",
            "idempotency_key_idx",
        )
    )


@pytest.mark.integration
async def test_postgres_migration_creates_a_missing_schema(postgres_target: tuple[str, str, str]) -> None:
    url, schema, table = postgres_target
    # Inside the run's schema name space, so the session's cleanup cannot miss it.
    own_schema = f"{schema}_{table}"
    store = PostgresJobStore(url, schema=own_schema, table=table)
    plain_url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        await store.start()
        await store.create(queued("job-1"))
        assert await store.get("job-1") == queued("job-1")
    finally:
        await store.close()
        conn = await asyncpg.connect(plain_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{own_schema}" CASCADE')
        finally:
            await conn.close()


@pytest.mark.integration
async def test_postgres_purge_deletes_the_expired_rows(postgres_target: tuple[str, str, str]) -> None:
    url, schema, table = postgres_target
    store = PostgresJobStore(url, schema=schema, table=table, result_ttl_seconds=10, failure_ttl_seconds=20)
    plain_url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        for job_id in ("completed", "failed", "active"):
            await store.create(queued(job_id))
        await store.finish("completed", status=JobStatus.CANCELLED, now=NOW)
        await store.finish("failed", status=JobStatus.FAILED, now=NOW, error=JobFailure("X", "y"))
        assert await store.purge_expired(now=NOW + 15) == 1
        assert await store.purge_expired(now=NOW + 15) == 0
        assert await store.purge_expired(now=NOW + 25) == 1
        conn = await asyncpg.connect(plain_url)
        try:
            left = await conn.fetch(f'SELECT id FROM "{schema}"."{table}"')
        finally:
            await conn.close()
        assert [row["id"] for row in left] == ["active"]
    finally:
        await store.close()


@pytest.mark.integration
async def test_postgres_refuses_nul_characters_as_a_validation_error(
    postgres_target: tuple[str, str, str],
) -> None:
    # PostgreSQL text and JSONB cannot hold U+0000: the adapter says so instead of a driver error.
    url, schema, table = postgres_target
    store = PostgresJobStore(url, schema=schema, table=table)
    try:
        await store.create(queued("job-1"))
        await store.start_job("job-1", owner="a", now=NOW, lease_seconds=30)
        with pytest.raises(ValidationFailed):
            await store.heartbeat("job-1", owner="a", now=NOW, lease_seconds=30, message="a\x00b")
        with pytest.raises(ValidationFailed):
            await store.finish("job-1", status=JobStatus.COMPLETED, now=NOW, result={"a": "b\x00"})
        job = await store.get("job-1")
        assert job is not None
        assert (job.status, job.message) == (JobStatus.RUNNING, "")
    finally:
        await store.close()
