"""The PostgreSQL job store's table: its columns and indexes, the idempotent migration that creates
them, and the mapping between a row and a `Job`.

Times are float epoch seconds in DOUBLE PRECISION columns, which round-trip a Python float exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    cast,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import CreateIndex, CreateSchema, CreateTable

from domain.jobs import ACTIVE_STATES, Job, JobFailure, JobStatus

# The job store's table unless told otherwise; the table source never reads it (access.py).
DEFAULT_JOB_TABLE = "ml_worker_jobs"
ACTIVE = sorted(s.value for s in ACTIVE_STATES)
_STATUSES = ", ".join(f"'{s.value}'" for s in JobStatus)


@dataclass(frozen=True)
class JobTable:
    schema: str
    table: Table
    indexes: tuple[Index, ...]
    # Every column but the result, which can be megabytes and is not read back after a write.
    summary: tuple[Column[Any], ...]

    async def migrate(self, conn: AsyncConnection) -> None:
        """Create the schema, table and indexes if missing."""
        # Replicas starting together would race on the catalogue (CREATE ... IF NOT EXISTS is
        # not safe concurrently); the transaction-scoped lock serialises them.
        await conn.execute(select(func.pg_advisory_xact_lock(_lock_key(self.schema, self.table.name))))
        exists = await conn.execute(
            text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": self.schema}
        )
        # Checked first: CREATE SCHEMA IF NOT EXISTS still needs the CREATE privilege.
        if exists.first() is None:
            await conn.execute(CreateSchema(self.schema, if_not_exists=True))
        await conn.execute(CreateTable(self.table, if_not_exists=True))
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
        CheckConstraint(f"status IN ({_STATUSES})", name=f"{name}_status_check"),
    )
    c = table.c
    indexes = (
        # Reaping scans only active jobs by lease; purging only finished ones by expiry.
        Index(f"{name}_lease_idx", c.lease_expires_at, postgresql_where=c.status.in_(ACTIVE)),
        Index(f"{name}_expires_idx", c.expires_at, postgresql_where=c.expires_at.is_not(None)),
    )
    return JobTable(schema, table, indexes, tuple(col for col in c if col.name != "result"))


def _lock_key(schema: str, table: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock, one per job table."""
    digest = hashlib.blake2b(f"ml-worker-jobs:{schema}.{table}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def jsonb(encoded: bytes) -> ColumnElement[Any]:
    # Sent as text and cast by the server: the JSON is already encoded (and validated) once, here.
    return cast(literal(encoded.decode("utf-8"), Text), JSONB)


def new_row(job: Job, encoded_result: bytes | None) -> dict[str, Any]:
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
    )
