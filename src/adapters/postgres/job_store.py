"""JobStore in PostgreSQL: one row per job, so any replica answers /status for any job.

Every transition is a single `UPDATE ... WHERE status IN (<states it may leave>) RETURNING`: the
row lock makes the check and the write atomic, so of a cancel and a completion racing, the second
matches no row and reports an illegal transition. Finished rows get `expires_at`; reads ignore rows
past it and `purge_expired` deletes them. Times are float epoch seconds in DOUBLE PRECISION
columns, which round-trip a Python float exactly.

Known limit: PostgreSQL text and JSONB cannot hold U+0000; a message or result containing it is
rejected with ValidationFailed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from sqlalchemy import (
    CheckConstraint,
    Column,
    ColumnElement,
    Double,
    Index,
    MetaData,
    Row,
    Table,
    Text,
    and_,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.schema import CreateIndex, CreateSchema, CreateTable

from adapters.job_json import encode_result
from adapters.system_clock import SystemClock
from application.errors import DependencyUnavailable, WorkerLost
from application.ports import Clock, JobStore
from domain.errors import IllegalTransition, NotFound, ValidationFailed
from domain.jobs import ACTIVE_STATES, Job, JobFailure, JobStatus, check_outcome

_ACTIVE = sorted(s.value for s in ACTIVE_STATES)
_STATUSES = ", ".join(f"'{s.value}'" for s in JobStatus)

# SQLSTATE classes that mean the database cannot serve us (connection, auth, resources, shutdown,
# unknown database), as opposed to a bad statement or value.
_UNAVAILABLE_CLASSES = ("08", "28", "53", "57", "3D")


def _asyncpg_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError(f"the PostgreSQL job store needs a postgresql:// URL, not {parsed.drivername}://")
    return parsed.render_as_string(hide_password=False)


def _lock_key(schema: str, table: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock, one per job table."""
    digest = hashlib.blake2b(f"ml-worker-jobs:{schema}.{table}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _sqlstate(exc: BaseException) -> str:
    for candidate in (exc, getattr(exc, "orig", None)):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return ""


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
        table: str = "ml_worker_jobs",
        result_ttl_seconds: float = 86400,
        failure_ttl_seconds: float = 604800,
        connect_timeout_seconds: float = 5.0,
        command_timeout_seconds: float = 30.0,
        clock: Clock | None = None,
        application_name: str = "ml-worker-jobs",
    ) -> None:
        if result_ttl_seconds <= 0 or failure_ttl_seconds <= 0:
            raise ValueError("job TTLs must be positive")
        self._schema = schema
        self._result_ttl = float(result_ttl_seconds)
        self._failure_ttl = float(failure_ttl_seconds)
        self._clock: Clock = clock or SystemClock()
        self._lock_key = _lock_key(schema, table)
        self._engine = create_async_engine(
            _asyncpg_url(url),
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
        metadata = MetaData(schema=schema)
        self._table = Table(
            table,
            metadata,
            Column("id", Text, primary_key=True),
            Column("type", Text, nullable=False),
            Column("status", Text, nullable=False),
            Column("created_at", Double, nullable=False),
            Column("progress", Double, nullable=False),
            Column("message", Text, nullable=False),
            Column("started_at", Double),
            Column("finished_at", Double),
            Column("result", JSONB),
            Column("error_code", Text),
            Column("error_message", Text),
            Column("owner", Text),
            Column("lease_expires_at", Double),
            # Set on finish; NULL while the job is active.
            Column("expires_at", Double),
            CheckConstraint(f"status IN ({_STATUSES})", name=f"{table}_status_check"),
        )
        t = self._table
        self._indexes = [
            # Reaping scans only active jobs by lease; purging only finished ones by expiry.
            Index(f"{table}_lease_idx", t.c.lease_expires_at, postgresql_where=t.c.status.in_(_ACTIVE)),
            Index(f"{table}_expires_idx", t.c.expires_at, postgresql_where=t.c.expires_at.is_not(None)),
        ]
        self._summary = [c for c in t.c if c.name != "result"]
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
        values: dict[str, Any] = {
            "id": job.id,
            "type": job.type,
            "status": job.status.value,
            "created_at": job.created_at,
            "progress": job.progress,
            "message": job.message,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "result": None if job.result is None else _jsonb(encode_result(job.result)),
            "error_code": None if job.error is None else job.error.code,
            "error_message": None if job.error is None else job.error.message,
            "owner": job.owner,
            "lease_expires_at": job.lease_expires_at,
            "expires_at": None,
        }
        new_row = insert(t).values(values)
        # An expired row not yet purged no longer exists for readers, so its id may be reused.
        stmt = new_row.on_conflict_do_update(
            index_elements=[t.c.id],
            set_={name: new_row.excluded[name] for name in values if name != "id"},
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
        return None if row is None else _job(row)

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
        return _job(row)

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
        stmt = update(t).where(t.c.id == job_id, t.c.status.in_(_ACTIVE)).values(values).returning(*t.c)
        await self._ready()
        async with self._connection() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                # Not active: the job as stored (a worker seeing `cancelled` stops), or gone.
                row = (await conn.execute(select(t).where(self._live(job_id)))).first()
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        return _job(row)

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
            values["result"] = _jsonb(encoded)
        if error is not None:
            values["error_code"] = error.code
            values["error_message"] = error.message
        # The result is not read back: it can be megabytes, and the caller holds it already.
        stmt = (
            update(t)
            .where(t.c.id == job_id, t.c.status.in_(_ACTIVE))
            .values(values)
            .returning(*self._summary)
        )
        await self._ready()
        async with self._connection() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                await self._raise_refused(conn, job_id, status)
        assert row is not None
        return _job(row, None if encoded is None else orjson.loads(encoded))

    async def reap_expired_leases(self, *, now: float) -> list[Job]:
        t = self._table
        stmt = (
            update(t)
            .where(t.c.status.in_(_ACTIVE), t.c.lease_expires_at < now)
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
        return [_job(row) for row in rows]

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
                        f"PostgreSQL job table cannot be prepared: {_reason(exc)}"
                    ) from exc
                self._migrated = True

    async def _migrate(self) -> None:
        async with self._connection() as conn:
            # Replicas starting together would race on the catalogue (CREATE ... IF NOT EXISTS is
            # not safe concurrently); the transaction-scoped lock serialises them.
            await conn.execute(select(func.pg_advisory_xact_lock(self._lock_key)))
            exists = await conn.execute(
                text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": self._schema}
            )
            # Checked first: CREATE SCHEMA IF NOT EXISTS still needs the CREATE privilege.
            if exists.first() is None:
                await conn.execute(CreateSchema(self._schema, if_not_exists=True))
            await conn.execute(CreateTable(self._table, if_not_exists=True))
            for index in self._indexes:
                await conn.execute(CreateIndex(index, if_not_exists=True))

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction committed on exit, with driver errors translated."""
        try:
            async with self._engine.begin() as conn:
                yield conn
        except (OSError, TimeoutError, sa_exc.TimeoutError) as exc:
            raise DependencyUnavailable(f"PostgreSQL is unavailable: {_reason(exc)}") from exc
        except (sa_exc.DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            state = _sqlstate(exc)
            invalidated = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
            if (
                invalidated
                or isinstance(exc, sa_exc.InterfaceError | asyncpg.InterfaceError)
                or state.startswith(_UNAVAILABLE_CLASSES)
            ):
                raise DependencyUnavailable(f"PostgreSQL is unavailable: {_reason(exc)}") from exc
            if state.startswith("22"):
                # Class 22 is a value PostgreSQL cannot store (e.g. U+0000 in text or JSONB).
                raise ValidationFailed(f"the job store cannot keep this value: {_reason(exc)}") from exc
            raise


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    cause = orig if orig is not None else exc
    said = str(cause).strip()
    # Timeouts carry no message; the exception's name is the reason then.
    return said.splitlines()[0] if said else type(cause).__name__


def _jsonb(encoded: bytes) -> ColumnElement[Any]:
    # Sent as text and cast by the server: the JSON is already encoded (and validated) once, here.
    return cast(literal(encoded.decode("utf-8"), Text), JSONB)


def _job(row: Row[Any], result: Mapping[str, Any] | None = None) -> Job:
    m = row._mapping
    stored = m.get("result", result)
    return Job(
        id=m["id"],
        type=m["type"],
        status=JobStatus(m["status"]),
        created_at=m["created_at"],
        progress=m["progress"],
        message=m["message"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        result=stored,
        error=None if m["error_code"] is None else JobFailure(m["error_code"], m["error_message"] or ""),
        owner=m["owner"],
        lease_expires_at=m["lease_expires_at"],
    )
