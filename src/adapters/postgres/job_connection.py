"""What the PostgreSQL job store stands on: its engine, the migration run once before the first
call, one deadline per call, and one transaction per call with the driver's errors translated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import orjson
from sqlalchemy import exc as sa_exc
from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from adapters.deadlines import Deadlines
from adapters.postgres.engine import job_store_url
from adapters.postgres.errors import job_store_error, reason
from adapters.postgres.job_table import DEFAULT_JOB_TABLE, job_table
from adapters.system_clock import SystemClock
from application.errors import DependencyUnavailable
from application.ports import Clock

T = TypeVar("T")


class PostgresJobConnection:
    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        table: str = DEFAULT_JOB_TABLE,
        result_ttl_seconds: float = 86400,
        failure_ttl_seconds: float = 604800,
        timeout_seconds: float = 2.0,
        clock: Clock | None = None,
        application_name: str = "ml-worker-jobs",
    ) -> None:
        if result_ttl_seconds <= 0 or failure_ttl_seconds <= 0:
            raise ValueError("job TTLs must be positive")
        self._result_ttl = float(result_ttl_seconds)
        self._failure_ttl = float(failure_ttl_seconds)
        self._clock: Clock = clock or SystemClock()
        self._jobs = job_table(schema, table)
        self._table = self._jobs.table
        self._deadlines = Deadlines("PostgreSQL", timeout_seconds)
        self._engine = create_async_engine(
            job_store_url(url),
            connect_args={
                "timeout": timeout_seconds,
                # No command timeout of the driver's: each call's deadline covers the whole
                # exchange, and a large result may take longer than one command timeout would allow.
                "command_timeout": None,
                # Names the connections in pg_stat_activity.
                "server_settings": {"application_name": application_name},
            },
            # A pooled connection is tested before use, so a database restart costs a reconnect
            # rather than a failed request.
            pool_pre_ping=True,
            json_deserializer=orjson.loads,
        )
        self._migrated = False
        self._migrate_lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect and create (or upgrade) the schema, tables and indexes if missing (idempotent)."""
        await self._deadlines.call(self._ready)

    async def close(self) -> None:
        await self._deadlines.close()
        await self._engine.dispose()

    async def check(self) -> str | None:
        try:
            await self._run(lambda conn: conn.execute(select(literal(1))))
        except DependencyUnavailable as exc:
            return exc.message
        return None

    async def _run(self, work: Callable[[AsyncConnection], Awaitable[T]], seconds: float | None = None) -> T:
        """`work` in a transaction (after the migration, if it is still due), within a deadline."""

        async def attempt() -> T:
            await self._ready()
            async with self._connection() as conn:
                return await work(conn)

        return await self._deadlines.call(attempt, seconds)

    async def _ready(self) -> None:
        if self._migrated:
            return
        async with self._migrate_lock:
            if not self._migrated:
                try:
                    await self._migrate()
                except sa_exc.DBAPIError as exc:
                    # Reachable but unusable (no privilege to create the table, ...): for /health
                    # and callers that is the same as down, and the reason says why.
                    raise DependencyUnavailable(
                        f"PostgreSQL job table cannot be prepared: {reason(exc)}"
                    ) from exc
                self._migrated = True

    async def _migrate(self) -> None:
        async with self._connection() as conn:
            await self._jobs.migrate(conn)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction committed on exit, with driver errors translated."""
        try:
            async with self._engine.begin() as conn:
                yield conn
        except Exception as exc:
            translated = job_store_error(exc)
            if translated is None:
                raise
            raise translated from exc
