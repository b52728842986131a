"""JobStore in PostgreSQL: one row per job, so any replica answers /status for any job.

Every transition is a single `UPDATE ... WHERE status IN (<states it may leave>) RETURNING`: the
row lock makes the check and the write atomic, so of a cancel and a completion racing, the second
matches no row and reports an illegal transition. Finished rows get `expires_at`; reads ignore rows
past it and `purge_expired` deletes them. The table, its migration and the row mapping are in
`job_table`; driver errors are translated in `errors`.

Known limit: PostgreSQL text and JSONB cannot hold U+0000; a message or result containing it is
rejected with ValidationFailed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Text, and_, case, delete, func, literal, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from adapters.job_json import encode_result
from adapters.postgres.engine import job_store_url
from adapters.postgres.errors import job_store_error, reason
from adapters.postgres.job_table import (
    ACTIVE,
    DEFAULT_JOB_TABLE,
    job_from_row,
    job_table,
    jsonb,
    new_row,
)
from adapters.system_clock import SystemClock
from application.errors import DependencyUnavailable, WorkerLost
from application.ports import Clock, JobStore
from domain.errors import IllegalTransition, NotFound, ValidationFailed
from domain.jobs import Job, JobFailure, JobStatus, check_outcome


class PostgresJobStore(JobStore):
    """Jobs in one table, created at start by an idempotent migration.

    `get` has no `now` argument, so reads decide expiry with `clock` (the system clock unless a
    test passes a fake one). If the database is down at start, start() raises DependencyUnavailable
    and the migration is retried on the next call, so the store recovers without a restart.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str = "public",
        table: str = DEFAULT_JOB_TABLE,
        result_ttl_seconds: float = 86400,
        failure_ttl_seconds: float = 604800,
        connect_timeout_seconds: float = 5.0,
        command_timeout_seconds: float = 30.0,
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
        self._engine = create_async_engine(
            job_store_url(url),
            connect_args={
                "timeout": connect_timeout_seconds,
                "command_timeout": command_timeout_seconds,
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
        """Connect and create the schema, table and indexes if missing (idempotent)."""
        await self._ready()

    async def close(self) -> None:
        await self._engine.dispose()

    async def check(self) -> str | None:
        try:
            await self._ready()
            async with self._connection() as conn:
                await conn.execute(select(literal(1)))
        except DependencyUnavailable as exc:
            return exc.message
        return None

    async def create(self, job: Job) -> None:
        if job.status is not JobStatus.QUEUED:
            raise ValidationFailed(f"a new job must be queued, not {job.status.value}")
        t = self._table
        values = new_row(job, None if job.result is None else encode_result(job.result))
        inserted_row = insert(t).values(values)
        # An expired row not yet purged no longer exists for readers, so its id may be reused.
        stmt = inserted_row.on_conflict_do_update(
            index_elements=[t.c.id],
            set_={name: inserted_row.excluded[name] for name in values if name != "id"},
            where=and_(t.c.expires_at.is_not(None), t.c.expires_at <= self._clock.now()),
        ).returning(t.c.id)
        await self._ready()
        async with self._connection() as conn:
            inserted = (await conn.execute(stmt)).first()
        if inserted is None:
            raise ValidationFailed(f"job {job.id!r} already exists")

    async def get(self, job_id: str) -> Job | None:
        await self._ready()
        async with self._connection() as conn:
            row = (await conn.execute(select(self._table).where(self._live(job_id)))).first()
        return None if row is None else job_from_row(row)

    async def start_job(self, job_id: str, *, owner: str, now: float, lease_seconds: float) -> Job:
        t = self._table
        stmt = (
            update(t)
            .where(t.c.id == job_id, t.c.status == JobStatus.QUEUED.value)
            .values(
                status=JobStatus.RUNNING.value,
                started_at=now,
                owner=owner,
                lease_expires_at=now + lease_seconds,
            )
            .returning(*t.c)
        )
        await self._ready()
        async with self._connection() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                await self._raise_refused(conn, job_id, JobStatus.RUNNING)
        assert row is not None
        return job_from_row(row)

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
        t = self._table
        running = t.c.status == JobStatus.RUNNING.value
        # GREATEST: heartbeats can arrive out of order, and a late one must not shorten the lease
        # or move progress backwards. PostgreSQL's GREATEST skips NULLs.
        lease = func.greatest(t.c.lease_expires_at, now + lease_seconds)
        values: dict[str, Any] = {"lease_expires_at": lease}
        if progress is not None:
            # Clamped as Job.with_progress clamps, so every store records the same value.
            clamped = min(1.0, max(0.0, float(progress)))
            values["progress"] = case((running, func.greatest(t.c.progress, clamped)), else_=t.c.progress)
        if message is not None:
            values["message"] = case((running, literal(message, Text)), else_=t.c.message)
        stmt = update(t).where(t.c.id == job_id, t.c.status.in_(ACTIVE)).values(values).returning(*t.c)
        await self._ready()
        async with self._connection() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                # Not active: the job as stored (a worker seeing `cancelled` stops), or gone.
                row = (await conn.execute(select(t).where(self._live(job_id)))).first()
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        return job_from_row(row)

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
        encoded = None if result is None else encode_result(result)
        t = self._table
        ttl = self._failure_ttl if status is JobStatus.FAILED else self._result_ttl
        values: dict[str, Any] = {
            "status": status.value,
            "finished_at": now,
            "lease_expires_at": None,
            "expires_at": now + ttl,
        }
        if encoded is not None:
            values["progress"] = 1.0
            values["result"] = jsonb(encoded)
        if error is not None:
            values["error_code"] = error.code
            values["error_message"] = error.message
        # The result is not read back: it can be megabytes, and the caller holds it already.
        stmt = (
            update(t)
            .where(t.c.id == job_id, t.c.status.in_(ACTIVE))
            .values(values)
            .returning(*self._jobs.summary)
        )
        await self._ready()
        async with self._connection() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                await self._raise_refused(conn, job_id, status)
        assert row is not None
        return job_from_row(row, None if encoded is None else orjson.loads(encoded))

    async def reap_expired_leases(self, *, now: float) -> list[Job]:
        t = self._table
        stmt = (
            update(t)
            .where(t.c.status.in_(ACTIVE), t.c.lease_expires_at < now)
            .values(
                status=JobStatus.FAILED.value,
                finished_at=now,
                error_code=WorkerLost.code,
                error_message="the worker running this job stopped sending heartbeats",
                lease_expires_at=None,
                expires_at=now + self._failure_ttl,
            )
            .returning(*t.c)
        )
        await self._ready()
        async with self._connection() as conn:
            rows = (await conn.execute(stmt)).all()
        return [job_from_row(row) for row in rows]

    async def purge_expired(self, *, now: float) -> int:
        t = self._table
        await self._ready()
        async with self._connection() as conn:
            deleted = await conn.execute(delete(t).where(t.c.expires_at <= now))
        return int(deleted.rowcount)

    def _live(self, job_id: str) -> ColumnElement[bool]:
        t = self._table
        return and_(t.c.id == job_id, or_(t.c.expires_at.is_(None), t.c.expires_at > self._clock.now()))

    async def _raise_refused(self, conn: AsyncConnection, job_id: str, target: JobStatus) -> None:
        """Explain why a conditional update matched no row: the job is gone, or in the wrong state."""
        current = (await conn.execute(select(self._table.c.status).where(self._live(job_id)))).scalar()
        if current is None:
            raise NotFound(f"job {job_id!r} not found")
        raise IllegalTransition(f"a {current} job cannot become {target.value}")

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
