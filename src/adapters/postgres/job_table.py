"""The PostgreSQL job store's tables: their columns and indexes, the idempotent migration that creates
or upgrades them, and the mapping between a row and a `Job`.

Layout: one row per job in `<table>`; a job's input (its payload, opaque bytes) in
`<table>_payloads`, one row per job that has one, deleted when the job becomes final. The payload
lives apart so that job rows, and the /status reads and queue scans over them, stay small however
large the inputs are; the job row keeps `payload_bytes`, so the queue's size is a sum over job rows.

`format` is the layout a row was written in (domain.jobs JOB_FORMAT). Rows written before the queue
existed are format 1 (the column's default, which is also what a not yet updated replica writes):
they read back as jobs with no attempts, and are never claimed.

Times are float epoch seconds in DOUBLE PRECISION columns, which round-trip a Python float exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ColumnElement,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    Table,
    Text,
    cast,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateIndex, CreateSchema, CreateTable

from domain.jobs import ACTIVE_STATES, JOB_FORMAT, Job, JobFailure, JobStatus

# The job store's table unless told otherwise; the table source never reads it (access.py).
DEFAULT_JOB_TABLE = "ml_worker_jobs"
PAYLOADS_SUFFIX = "_payloads"
ACTIVE = sorted(s.value for s in ACTIVE_STATES)
_STATUSES = ", ".join(f"'{s.value}'" for s in JobStatus)
# The columns the queue added, as ALTER TABLE ... ADD COLUMN writes them (the same definitions as in
# job_table, which CREATE TABLE uses). Constant defaults: PostgreSQL adds them without a rewrite.
_ADDED_COLUMNS = (
    ("attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("tenant_id", "TEXT"),
    ("format", "INTEGER NOT NULL DEFAULT 1"),
    ("idempotency_key", "TEXT"),
    ("payload_bytes", "BIGINT NOT NULL DEFAULT 0"),
)


@dataclass(frozen=True)
class JobTable:
    schema: str
    table: Table
    payloads: Table
    indexes: tuple[Index, ...]
    # Every column but the result, which can be megabytes and is not read back after a write.
    summary: tuple[Column[Any], ...]
    # Transaction-scoped advisory lock keys: bounded creates, and claims under a tenant cap.
    create_lock: int
    claim_lock: int

    async def migrate(self, conn: AsyncConnection) -> None:
        """Create the schema, tables and indexes if missing, and upgrade a table of an older layout."""
        # Replicas starting together would race on the catalogue (CREATE ... IF NOT EXISTS is
        # not safe concurrently); the transaction-scoped lock serialises them. The key is the one
        # replicas before the queue take too, so an old and a new replica never migrate at once.
        await conn.execute(select(func.pg_advisory_xact_lock(_lock_key(self.schema, self.table.name))))
        exists = await conn.execute(
            text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": self.schema}
        )
        # Checked first: CREATE SCHEMA IF NOT EXISTS still needs the CREATE privilege.
        if exists.first() is None:
            await conn.execute(CreateSchema(self.schema, if_not_exists=True))
        await conn.execute(CreateTable(self.table, if_not_exists=True))
        # A table made before the queue has none of its columns; on a new table these do nothing.
        quoted = conn.dialect.identifier_preparer.format_table(self.table)
        for name, definition in _ADDED_COLUMNS:
            await conn.execute(text(f'ALTER TABLE {quoted} ADD COLUMN IF NOT EXISTS "{name}" {definition}'))
        await conn.execute(CreateTable(self.payloads, if_not_exists=True))
        for index in self.indexes:
            await conn.execute(CreateIndex(index, if_not_exists=True))


def job_table(schema: str, name: str) -> JobTable:
    table = Table(
        name,
        MetaData(schema=schema),
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
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("tenant_id", Text),
        Column("format", Integer, nullable=False, server_default=text("1")),
        # Cleared by the next create under the same key once the job expired: free before the purge.
        Column("idempotency_key", Text),
        # The size of the job's payload while it is active (0 without one).
        Column("payload_bytes", BigInteger, nullable=False, server_default=text("0")),
        CheckConstraint(f"status IN ({_STATUSES})", name=f"{name}_status_check"),
    )
    payloads = Table(
        payload_table(name),
        table.metadata,
        Column("job_id", Text, ForeignKey(table.c.id, ondelete="CASCADE"), primary_key=True),
        Column("data", LargeBinary, nullable=False),
    )
    c = table.c
    queued = c.status == JobStatus.QUEUED.value
    indexes = (
        # Reaping scans only active jobs by lease; purging only finished ones by expiry.
        Index(f"{name}_lease_idx", c.lease_expires_at, postgresql_where=c.status.in_(ACTIVE)),
        Index(f"{name}_expires_idx", c.expires_at, postgresql_where=c.expires_at.is_not(None)),
        # A claim reads the oldest queued job: the head of this index.
        Index(f"{name}_queue_idx", c.created_at, c.id, postgresql_where=queued),
        # A claim under a tenant cap counts each tenant's running jobs.
        Index(
            f"{name}_tenant_running_idx",
            c.tenant_id,
            postgresql_where=(c.status == JobStatus.RUNNING.value) & c.tenant_id.is_not(None),
        ),
        Index(
            f"{name}_idempotency_key_idx",
            c.idempotency_key,
            unique=True,
            postgresql_where=c.idempotency_key.is_not(None),
        ),
    )
    return JobTable(
        schema,
        table,
        payloads,
        indexes,
        tuple(col for col in c if col.name != "result"),
        create_lock=_lock_key(schema, name, "create"),
        claim_lock=_lock_key(schema, name, "claim"),
    )


def payload_table(job_table_name: str) -> str:
    """The name of the table holding the inputs of the jobs in `job_table_name` (same schema)."""
    return job_table_name + PAYLOADS_SUFFIX


def _lock_key(schema: str, table: str, purpose: str | None = None) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock, one per job table (and purpose)."""
    what = f"ml-worker-jobs:{schema}.{table}" + ("" if purpose is None else f":{purpose}")
    digest = hashlib.blake2b(what.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def jsonb(encoded: bytes) -> ColumnElement[Any]:
    # Sent as text and cast by the server: the JSON is already encoded (and validated) once, here.
    return cast(literal(encoded.decode("utf-8"), Text), JSONB)


def new_row(
    job: Job, encoded_result: bytes | None, *, idempotency_key: str | None, payload_bytes: int
) -> dict[str, Any]:
    return {
        "id": job.id,
        "type": job.type,
        "status": job.status.value,
        "created_at": job.created_at,
        "progress": job.progress,
        "message": job.message,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "result": None if encoded_result is None else jsonb(encoded_result),
        "error_code": None if job.error is None else job.error.code,
        "error_message": None if job.error is None else job.error.message,
        "owner": job.owner,
        "lease_expires_at": job.lease_expires_at,
        "expires_at": None,
        "attempts": job.attempts,
        "tenant_id": job.tenant_id,
        "format": JOB_FORMAT,
        "idempotency_key": idempotency_key,
        "payload_bytes": payload_bytes,
    }


def job_from_row(row: Row[Any], result: Mapping[str, Any] | None = None) -> Job:
    """The job a row holds; `result` stands in for a result column the statement did not return."""
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
        attempts=m["attempts"],
        tenant_id=m["tenant_id"],
    )
