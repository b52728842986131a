"""JobStore in PostgreSQL: one row per job, so any replica answers /status for any job.

Every transition is a single `UPDATE ... WHERE status IN (<states it may leave>) RETURNING`: the
row lock makes the check and the write atomic, so of a cancel and a completion racing, the second
matches no row and reports an illegal transition. Finished rows get `expires_at`; reads ignore rows
past it and `purge_expired` deletes them. The table, its migration and the row mapping are in
`job_table`; driver errors are translated in `errors`.

Every call has one deadline (`timeout_seconds`, more for a large result; see adapters.deadlines),
so a database that accepts connections and never answers costs a caller that long, not a hang.

Known limit: PostgreSQL text and JSONB cannot hold U+0000; a message or result containing it is
rejected with ValidationFailed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

import orjson
from sqlalchemy import ColumnElement, Row, Text, and_, case, delete, func, literal, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from adapters.deadlines import Deadlines
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

T = TypeVar("T")
# A result up to this size (as stored, compressed) comes back with the job in one round trip; a
# larger one is read on its own, with a deadline sized to it.
_INLINE_RESULT_BYTES = 262_144
# How much larger than its stored size a result is on the wire (TOAST compresses JSON about 2-5x).
_WIRE_PER_STORED_BYTE = 8


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
        """Connect and create the schema, table and indexes if missing (idempotent)."""
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

    async def create(self, job: Job) -> None:
        if job.status is not JobStatus.QUEUED:
            raise ValidationFailed(f"a new job must be queued, not {job.status.value}")
        t = self._table
        encoded = None if job.result is None else encode_result(job.result)
        values = new_row(job, encoded)
        inserted_row = insert(t).values(values)
        # An expired row not yet purged no longer exists for readers, so its id may be reused.
        stmt = inserted_row.on_conflict_do_update(
            index_elements=[t.c.id],
            set_={name: inserted_row.excluded[name] for name in values if name != "id"},
            where=and_(t.c.expires_at.is_not(None), t.c.expires_at <= self._clock.now()),
        ).returning(t.c.id)
        inserted = await self._run(
            lambda conn: _first(conn.execute(stmt)), self._deadlines.for_payload(len(encoded or b""))
        )
        if inserted is None:
            raise ValidationFailed(f"job {job.id!r} already exists")

    async def get(self, job_id: str) -> Job | None:
        t = self._table
        size = func.pg_column_size(t.c.result)
        stmt = select(
            *self._jobs.summary,
            size.label("result_size"),
            case((size <= _INLINE_RESULT_BYTES, t.c.result)).label("result"),
        ).where(self._live(job_id))
        row = await self._run(lambda conn: _first(conn.execute(stmt)))
        if row is None:
            return None
        stored_size = row._mapping["result_size"]
        if stored_size is None or row._mapping["result"] is not None:
            return job_from_row(row)
        # Too large to come back with the job: read on its own, with the time its size needs.
        wire_size = stored_size * _WIRE_PER_STORED_BYTE
        result = await self._run(
            lambda conn: _first(conn.execute(select(t.c.result).where(self._live(job_id)))),
            self._deadlines.for_payload(wire_size),
        )
        return None if result is None else replace(job_from_row(row), result=result[0])

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
        return job_from_row(
            await self._run(lambda conn: self._transition(conn, stmt, job_id, JobStatus.RUNNING))
        )

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

        async def beat(conn: AsyncConnection) -> Row[Any] | None:
            row = (await conn.execute(stmt)).first()
            if row is None:
                # Not active: the job as stored (a worker seeing `cancelled` stops), or gone.
                row = (await conn.execute(select(t).where(self._live(job_id)))).first()
            return row

        row = await self._run(beat)
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
        row = await self._run(
            lambda conn: self._transition(conn, stmt, job_id, status),
            self._deadlines.for_payload(0 if encoded is None else len(encoded)),
        )
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

        async def reap(conn: AsyncConnection) -> Sequence[Row[Any]]:
            return (await conn.execute(stmt)).all()

        return [job_from_row(row) for row in await self._run(reap)]

    async def purge_expired(self, *, now: float) -> int:
        t = self._table

        async def purge(conn: AsyncConnection) -> int:
            return int((await conn.execute(delete(t).where(t.c.expires_at <= now))).rowcount)

        return await self._run(purge)

    def _live(self, job_id: str) -> ColumnElement[bool]:
        t = self._table
        return and_(t.c.id == job_id, or_(t.c.expires_at.is_(None), t.c.expires_at > self._clock.now()))

    async def _run(self, work: Callable[[AsyncConnection], Awaitable[T]], seconds: float | None = None) -> T:
        """`work` in a transaction (after the migration, if it is still due), within a deadline."""

        async def attempt() -> T:
            await self._ready()
            async with self._connection() as conn:
                return await work(conn)

        return await self._deadlines.call(attempt, seconds)

    async def _transition(self, conn: AsyncConnection, stmt: Any, job_id: str, target: JobStatus) -> Row[Any]:
        row: Row[Any] | None = (await conn.execute(stmt)).first()
        if row is None:
            await self._raise_refused(conn, job_id, target)
        assert row is not None
        return row

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


async def _first(pending: Awaitable[Any]) -> Row[Any] | None:
    row: Row[Any] | None = (await pending).first()
    return row
