"""Fixtures for the port suites: every JobStore adapter behind one harness.

Redis and PostgreSQL params run against the real servers (ML_WORKER_TEST_REDIS_URL,
ML_WORKER_TEST_DATABASE_URL, defaulting to the local ones). When a server cannot be reached those
params skip, unless ML_WORKER_REQUIRE_SERVICES=1 (CI), where they fail. Test data is isolated: Redis
keys live under a prefix unique to the run and test and are deleted afterwards; PostgreSQL tables live
in a schema unique to the run, one table per test, and the schema is dropped at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import redis
import redis.asyncio as aioredis

from adapters.memory.job_store import InMemoryJobStore
from adapters.postgres.job_store import PostgresJobStore
from adapters.redis.job_store import RedisJobStore
from application.ports import JobStore
from support.clock import FakeClock

from .job_store_harness import REDIS_REAP_BATCH, StoreHarness

REDIS_URL = os.environ.get("ML_WORKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get(
    "ML_WORKER_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REQUIRE_SERVICES = os.environ.get("ML_WORKER_REQUIRE_SERVICES") == "1"
RUN_ID = uuid.uuid4().hex[:10]
# The suite checks what the stores do, not how fast: a loaded machine must not turn a burst of
# concurrent calls into DEPENDENCY_UNAVAILABLE (the deadlines have their own tests).
SUITE_TIMEOUT = 15.0
_test_numbers = itertools.count()


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (ML_WORKER_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def _plain_pg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def redis_down_reason() -> str | None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"Redis at {REDIS_URL} is unreachable: {exc}"
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str | None]:
    """The run's own schema (None when PostgreSQL is unreachable); dropped with everything in it."""
    schema = f"mlw_test_{RUN_ID}"

    async def probe() -> None:
        conn = await asyncpg.connect(_plain_pg_url(DATABASE_URL), timeout=2)
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(_plain_pg_url(DATABASE_URL), timeout=5)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        yield None
        return
    yield schema
    asyncio.run(drop())


@pytest.fixture(scope="session")
def postgres_down_reason(postgres_schema: str | None) -> str | None:
    return None if postgres_schema else f"PostgreSQL at {DATABASE_URL} is unreachable"


async def _delete_redis_keys(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()  # type: ignore[attr-defined]


@pytest.fixture
async def redis_target(redis_down_reason: str | None) -> AsyncIterator[tuple[str, str]]:
    """(url, a key prefix unique to this test) for adapter-specific tests; the keys are deleted after."""
    if redis_down_reason:
        _unavailable(redis_down_reason)
    prefix = f"mlworker-test:{RUN_ID}:{next(_test_numbers)}:"
    yield REDIS_URL, prefix
    await _delete_redis_keys(prefix)


@pytest.fixture
def postgres_target(postgres_schema: str | None, postgres_down_reason: str | None) -> tuple[str, str, str]:
    """(url, the run's schema, a table name unique to this test) for adapter-specific tests."""
    if postgres_schema is None:
        _unavailable(postgres_down_reason or "PostgreSQL is unreachable")
    assert postgres_schema is not None
    return DATABASE_URL, postgres_schema, f"jobs_{next(_test_numbers)}"


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.integration),
        pytest.param("postgres", marks=pytest.mark.integration),
    ]
)
async def harness(
    request: pytest.FixtureRequest,
    redis_down_reason: str | None,
    postgres_schema: str | None,
    postgres_down_reason: str | None,
) -> AsyncIterator[StoreHarness]:
    kind: str = request.param
    clock = FakeClock()
    number = next(_test_numbers)
    prefix = f"mlworker-test:{RUN_ID}:{number}:"
    stores: list[JobStore] = []

    if kind == "memory":
        # One process-local store: `make` with other TTLs starts an empty store, which is what
        # memory means, so TTL tests build their store first.
        async def make(result_ttl_seconds: float = 86400, failure_ttl_seconds: float = 604800) -> JobStore:
            store = InMemoryJobStore(result_ttl_seconds, failure_ttl_seconds, clock=clock)
            await store.start()
            stores.append(store)
            return store

        native, shared = False, False
    elif kind == "redis":
        if redis_down_reason:
            _unavailable(redis_down_reason)

        async def make(result_ttl_seconds: float = 86400, failure_ttl_seconds: float = 604800) -> JobStore:
            store = RedisJobStore(
                REDIS_URL,
                key_prefix=prefix,
                result_ttl_seconds=result_ttl_seconds,
                failure_ttl_seconds=failure_ttl_seconds,
                reap_batch_size=REDIS_REAP_BATCH,
                timeout_seconds=SUITE_TIMEOUT,
            )
            await store.start()
            stores.append(store)
            return store

        native, shared = True, True
    else:
        if postgres_down_reason or postgres_schema is None:
            _unavailable(postgres_down_reason or "PostgreSQL is unreachable")
        assert postgres_schema is not None
        schema, table = postgres_schema, f"jobs_{number}"

        async def make(result_ttl_seconds: float = 86400, failure_ttl_seconds: float = 604800) -> JobStore:
            store = PostgresJobStore(
                DATABASE_URL,
                schema=schema,
                table=table,
                result_ttl_seconds=result_ttl_seconds,
                failure_ttl_seconds=failure_ttl_seconds,
                clock=clock,
                timeout_seconds=SUITE_TIMEOUT,
            )
            await store.start()
            stores.append(store)
            return store

        native, shared = False, True

    yield StoreHarness(kind, clock, make, native, shared, stores)

    for store in stores:
        await store.close()
    if kind == "redis":
        await _delete_redis_keys(prefix)


@pytest.fixture
async def store(harness: StoreHarness) -> JobStore:
    return await harness.make()
