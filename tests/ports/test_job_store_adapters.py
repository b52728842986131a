"""What is particular to one JobStore adapter: outage translation, Redis keys and expiry, the
PostgreSQL migration. The shared contract is in test_job_store_conformance.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
import redis.asyncio as aioredis

from adapters.postgres.job_store import PostgresJobStore
from adapters.redis.job_store import RedisJobStore
from application.errors import DependencyUnavailable
from application.ports import JobStore
from domain.errors import ValidationFailed
from domain.jobs import Job, JobFailure, JobStatus

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
            f"{prefix}{name}".encode() for name in ("job:active", "job:completed", "job:failed", "leases")
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
