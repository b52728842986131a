"""JobStore in PostgreSQL: one row per job, so any replica answers /status for any job, and the
table is the queue every replica claims from.

Every transition is a single `UPDATE ... WHERE <the states (and owner) it may leave> RETURNING`: the
row lock makes the check and the write atomic, so of a cancel and a completion racing, the second
matches no row and reports an illegal transition. A claim is one such statement over the oldest
claimable row, locked with SKIP LOCKED (job_queue explains why it is exclusive). Finished rows get
`expires_at` and lose their payload; reads ignore rows past it and `purge_expired` deletes them.

The tables (jobs, and their payloads apart), the migration and the row mapping are in `job_table`;
the queue's statements in `job_queue`; driver errors are translated in `errors`.

Every call has one deadline (`timeout_seconds`, more for a large result or payload; see
adapters.deadlines), so a database that accepts connections and never answers costs a caller that
long, not a hang. A large payload is therefore read on its own, once its size is known.

Known limit: PostgreSQL text and JSONB cannot hold U+0000; a message or result containing it is
rejected with ValidationFailed (payloads are bytes and may hold anything).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from contextlib import suppress
from dataclasses import replace
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Row, and_, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.job_json import encode_result
from adapters.postgres.job_connection import PostgresJobConnection
from adapters.postgres.job_queue import (
    RUNNING,
    check_room,
    claim_statement,
    depth_query,
    reap_statement,
    requeue_statement,
)
from adapters.postgres.job_table import ACTIVE, job_from_row, jsonb, new_row
from application.ports import Claim, JobStore, QueueDepth, QueueLimits
from domain.errors import IllegalTransition, NotFound, ValidationFailed
from domain.jobs import Job, JobFailure, JobStatus, check_outcome

# A result up to this size (as stored, compressed) comes back with the job in one round trip; a
# larger one is read on its own, with a deadline sized to it.
_INLINE_RESULT_BYTES = 262_144
# How much larger than its stored size a result is on the wire (TOAST compresses JSON about 2-5x).
_WIRE_PER_STORED_BYTE = 8
# The same for payloads, whose size is known exactly (payload_bytes).
_INLINE_PAYLOAD_BYTES = 262_144
# How many store timeouts a limited create may spend waiting for its turn at the queue's lock.
_CREATE_LINE_SECONDS_PER_TIMEOUT = 4


class PostgresJobStore(PostgresJobConnection, JobStore):
    """Jobs in one table (payloads in another), created or upgraded at start by an idempotent
    migration.

    `get` has no `now` argument, so reads decide expiry with `clock` (the system clock unless a
    test passes a fake one). If the database is down at start, start() raises DependencyUnavailable
    and the migration is retried on the next call, so the store recovers without a restart.
    """

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
        t = self._table
        encoded = None if job.result is None else encode_result(job.result)
        size = 0 if payload is None else len(payload)
        values = new_row(job, encoded, idempotency_key=idempotency_key, payload_bytes=size)
        # No conflict target: a duplicate id and a duplicate key are both "not inserted", told
        # apart below. An uncommitted insert of the same key is waited for, then seen as a conflict.
        stmt = insert(t).values(values).on_conflict_do_nothing().returning(*self._jobs.summary)

        async def write(conn: AsyncConnection) -> Job:
            now = self._clock.now()
            # An expired row not yet purged no longer exists for readers: its id and key are free.
            await conn.execute(delete(t).where(t.c.id == job.id, t.c.expires_at <= now))
            if idempotency_key is not None:
                await conn.execute(
                    update(t)
                    .where(t.c.idempotency_key == idempotency_key, t.c.expires_at <= now)
                    .values(idempotency_key=None)
                )
                # A retry of an accepted request gets its job, even when the queue is full now.
                if (earlier := await self._by_key(conn, idempotency_key)) is not None:
                    return earlier
            if limits is not None:
                # Counting and inserting under one lock, taken as late as possible (every create of
                # a burst waits for it): concurrent creates cannot each see room for one more and
                # together pass the bound.
                await conn.execute(select(func.pg_advisory_xact_lock(self._jobs.create_lock)))
                await check_room(conn, self._jobs, limits, size)
            row = (await conn.execute(stmt)).first()
            if row is None:
                earlier = None if idempotency_key is None else await self._by_key(conn, idempotency_key)
                if earlier is not None:
                    return earlier
                raise ValidationFailed(f"job {job.id!r} already exists")
            if payload is not None:
                await conn.execute(insert(self._jobs.payloads).values(job_id=job.id, data=payload))
            return job_from_row(row, job.result)

        seconds = self._deadlines.for_payload(len(encoded or b"") + size)
        if limits is not None:
            # Its turn at the lock comes after every create ahead of it, of every replica: a burst
            # of submissions is a line at the lock (about 3 ms each here, the commit's flush
            # included), not a silent database, so the line gets time of its own.
            seconds += _CREATE_LINE_SECONDS_PER_TIMEOUT * self._deadlines.seconds
        return await self._run(write, seconds)

    async def claim_next(
        self, *, owner: str, now: float, lease_seconds: float, tenant_cap: int | None = None
    ) -> Claim | None:
        stmt = claim_statement(
            self._jobs, owner=owner, now=now, lease_seconds=lease_seconds, tenant_cap=tenant_cap
        )

        async def take(conn: AsyncConnection) -> tuple[Job, int, bytes | None] | None:
            if tenant_cap is not None:
                # Serialises capped claims (see job_queue): the count below sees every earlier one.
                await conn.execute(select(func.pg_advisory_xact_lock(self._jobs.claim_lock)))
            row = (await conn.execute(stmt)).first()
            if row is None:
                return None
            size: int = row._mapping["payload_bytes"]
            data = None
            if size <= _INLINE_PAYLOAD_BYTES:
                p = self._jobs.payloads
                data = (await conn.execute(select(p.c.data).where(p.c.job_id == row.id))).scalar()
            return job_from_row(row), size, data

        taken = await self._run(take)
        if taken is None:
            return None
        job, size, data = taken
        if size > _INLINE_PAYLOAD_BYTES:
            # Too large for the claim's deadline: read on its own, while the job is still ours.
            try:
                found = await self._read_payload(job.id, size, running_under=owner)
            except Exception:
                # Given back rather than left to its lease, whose expiry would spend an attempt.
                with suppress(Exception):
                    await self.requeue(job.id, owner=owner, refund_attempt=True)
                raise
            if found is None:
                # Cancelled between the claim and the read: there is nothing to run; take another.
                return await self.claim_next(
                    owner=owner, now=now, lease_seconds=lease_seconds, tenant_cap=tenant_cap
                )
            data = found[0]
        return Claim(job, data)

    async def requeue(self, job_id: str, *, owner: str, refund_attempt: bool) -> Job:
        stmt = requeue_statement(self._jobs, job_id, owner=owner, refund_attempt=refund_attempt)
        return job_from_row(
            await self._run(lambda conn: self._transition(conn, stmt, job_id, JobStatus.QUEUED, owner))
        )

    async def queue_depth(self) -> QueueDepth:
        row = await self._run(lambda conn: _first(conn.execute(depth_query(self._jobs))))
        assert row is not None  # an aggregate always has its row
        m = row._mapping
        return QueueDepth(queued=m["queued"], running=m["running"], payload_bytes=int(m["payload_bytes"]))

    async def payload(self, job_id: str) -> bytes | None:
        t, p = self._table, self._jobs.payloads
        # The payload of an active job only: a replica from before the queue drops none on finish.
        stmt = (
            select(
                t.c.payload_bytes, case((t.c.payload_bytes <= _INLINE_PAYLOAD_BYTES, p.c.data)).label("data")
            )
            .select_from(t.join(p, p.c.job_id == t.c.id))
            .where(t.c.id == job_id, t.c.status.in_(ACTIVE))
        )
        row = await self._run(lambda conn: _first(conn.execute(stmt)))
        if row is None:
            return None
        size: int = row._mapping["payload_bytes"]
        if size <= _INLINE_PAYLOAD_BYTES:
            return bytes(row._mapping["data"])
        found = await self._read_payload(job_id, size, running_under=None)
        return None if found is None else found[0]

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
                status=RUNNING,
                started_at=now,
                owner=owner,
                lease_expires_at=now + lease_seconds,
                attempts=t.c.attempts + 1,
            )
            .returning(*self._jobs.summary)
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
        # GREATEST: heartbeats can arrive out of order, and a late one must not shorten the lease
        # or move progress backwards. PostgreSQL's GREATEST skips NULLs.
        lease = func.greatest(t.c.lease_expires_at, now + lease_seconds)
        values: dict[str, Any] = {"lease_expires_at": lease}
        if progress is not None:
            # Clamped as Job.with_progress clamps, so every store records the same value.
            values["progress"] = func.greatest(t.c.progress, min(1.0, max(0.0, float(progress))))
        if message is not None:
            values["message"] = message
        # Only the replica running the job renews it: one whose job was reaped and claimed again
        # (or cancelled) changes nothing, and learns from the row it gets back that it must stop.
        stmt = (
            update(t)
            .where(t.c.id == job_id, t.c.status == RUNNING, t.c.owner == owner)
            .values(values)
            .returning(*t.c)
        )

        async def beat(conn: AsyncConnection) -> Row[Any] | None:
            row = (await conn.execute(stmt)).first()
            if row is None:
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
        owner: str | None = None,
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
            "payload_bytes": 0,
        }
        if encoded is not None:
            values["progress"] = 1.0
            values["result"] = jsonb(encoded)
        if error is not None:
            values["error_code"] = error.code
            values["error_message"] = error.message
        leaves = t.c.status.in_(ACTIVE) if owner is None else and_(t.c.status == RUNNING, t.c.owner == owner)
        # The result is not read back: it can be megabytes, and the caller holds it already.
        stmt = update(t).where(t.c.id == job_id, leaves).values(values).returning(*self._jobs.summary)

        async def end(conn: AsyncConnection) -> Row[Any]:
            row = await self._transition(conn, stmt, job_id, status, owner)
            await self._drop_payloads(conn, [job_id])
            return row

        row = await self._run(end, self._deadlines.for_payload(0 if encoded is None else len(encoded)))
        return job_from_row(row, None if encoded is None else orjson.loads(encoded))

    async def reap_expired_leases(self, *, now: float, max_attempts: int = 1) -> list[Job]:
        stmt = reap_statement(self._jobs, now=now, max_attempts=max_attempts, failure_ttl=self._failure_ttl)

        async def reap(conn: AsyncConnection) -> Sequence[Row[Any]]:
            rows = (await conn.execute(stmt)).all()
            await self._drop_payloads(conn, [row.id for row in rows if row.status == JobStatus.FAILED.value])
            return rows

        return [job_from_row(row) for row in await self._run(reap)]

    async def purge_expired(self, *, now: float) -> int:
        t = self._table

        async def purge(conn: AsyncConnection) -> int:
            # Payloads go with their rows (ON DELETE CASCADE), though a final job has none left.
            return int((await conn.execute(delete(t).where(t.c.expires_at <= now))).rowcount)

        return await self._run(purge)

    def _live(self, job_id: str) -> ColumnElement[bool]:
        t = self._table
        return and_(t.c.id == job_id, (t.c.expires_at.is_(None)) | (t.c.expires_at > self._clock.now()))

    async def _by_key(self, conn: AsyncConnection, key: str) -> Job | None:
        row = (await conn.execute(select(self._table).where(self._table.c.idempotency_key == key))).first()
        return None if row is None else job_from_row(row)

    async def _read_payload(
        self, job_id: str, size: int, *, running_under: str | None
    ) -> tuple[bytes] | None:
        """A large payload, with the deadline its size needs; None when its job is no longer active
        (or, with `running_under`, no longer that owner's)."""
        t, p = self._table, self._jobs.payloads
        held = (
            t.c.status.in_(ACTIVE)
            if running_under is None
            else and_(t.c.status == RUNNING, t.c.owner == running_under)
        )
        stmt = select(p.c.data).select_from(t.join(p, p.c.job_id == t.c.id)).where(t.c.id == job_id, held)
        row = await self._run(lambda conn: _first(conn.execute(stmt)), self._deadlines.for_payload(size))
        return None if row is None else (bytes(row[0]),)

    async def _drop_payloads(self, conn: AsyncConnection, job_ids: Sequence[str]) -> None:
        if job_ids:
            p = self._jobs.payloads
            await conn.execute(delete(p).where(p.c.job_id.in_(job_ids)))

    async def _transition(
        self, conn: AsyncConnection, stmt: Any, job_id: str, target: JobStatus, owner: str | None = None
    ) -> Row[Any]:
        row: Row[Any] | None = (await conn.execute(stmt)).first()
        if row is None:
            await self._raise_refused(conn, job_id, target, owner)
        assert row is not None
        return row

    async def _raise_refused(
        self, conn: AsyncConnection, job_id: str, target: JobStatus, owner: str | None
    ) -> None:
        """Explain why a conditional update matched no row: the job is gone, in the wrong state, or
        run by another owner."""
        t = self._table
        row = (await conn.execute(select(t.c.status, t.c.owner).where(self._live(job_id)))).first()
        if row is None:
            raise NotFound(f"job {job_id!r} not found")
        if owner is not None and row.status == RUNNING and row.owner != owner:
            raise IllegalTransition(f"job {job_id!r} is not running under {owner!r}")
        raise IllegalTransition(f"a {row.status} job cannot become {target.value}")


async def _first(pending: Awaitable[Any]) -> Row[Any] | None:
    row: Row[Any] | None = (await pending).first()
    return row
