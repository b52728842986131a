"""What is particular to the PostgreSQL job store as a queue: upgrading a table of the layout before
the queue, rows an old replica writes during a rolling update, expiry it decides itself, and large
payloads read apart from their claim. The shared contract is in the conformance suites."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlalchemy import CheckConstraint, Column, Double, MetaData, Table, Text, insert, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateSchema, CreateTable

from adapters.postgres.job_store import PostgresJobStore
from application.errors import DependencyUnavailable
from domain.jobs import Job, JobStatus
from support.clock import FakeClock

pytestmark = pytest.mark.integration

NOW = 1_700_000_000.5
LEASE = 30.0


def old_layout(schema: str, name: str) -> Table:
    """The job table as replicas before the queue define it (copied from that version, unchanged)."""
    statuses = ", ".join(f"'{s.value}'" for s in JobStatus)
    return Table(
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
        Column("expires_at", Double),
        CheckConstraint(f"status IN ({statuses})", name=f"{name}_status_check"),
    )


def old_row(job_id: str, status: JobStatus, *, started: bool) -> dict[str, object]:
    # What an old replica's create (and start) wrote: the job owned and leased from the start.
    return {
        "id": job_id,
        "type": "segmentation",
        "status": status.value,
        "created_at": NOW,
        "progress": 0.0,
        "message": "",
        "started_at": NOW if started else None,
        "owner": "old-replica",
        "lease_expires_at": NOW + LEASE,
    }


@pytest.fixture
async def engine(postgres_target: tuple[str, str, str]) -> AsyncIterator[AsyncEngine]:
    url, _, _ = postgres_target
    made = create_async_engine(url)
    yield made
    await made.dispose()


async def test_postgres_upgrades_a_table_of_the_old_layout(
    postgres_target: tuple[str, str, str], engine: AsyncEngine
) -> None:
    url, schema, table = postgres_target
    old = old_layout(schema, table)
    async with engine.begin() as conn:
        await conn.execute(CreateSchema(schema, if_not_exists=True))
        await conn.execute(CreateTable(old))
        await conn.execute(insert(old).values(old_row("old-queued", JobStatus.QUEUED, started=False)))
        await conn.execute(insert(old).values(old_row("old-running", JobStatus.RUNNING, started=True)))
    store = PostgresJobStore(url, schema=schema, table=table, clock=FakeClock(NOW))
    try:
        await store.start()
        before = await store.get("old-queued")
        assert before == Job(
            id="old-queued",
            type="segmentation",
            status=JobStatus.QUEUED,
            created_at=NOW,
            owner="old-replica",
            lease_expires_at=NOW + LEASE,
        )
        assert before.attempts == 0
        assert (await store.get("old-running")).attempts == 0  # type: ignore[union-attr]
        # The old replica runs its jobs itself, and a new one could not read their input anyway.
        assert await store.claim_next(owner="new", now=NOW + 1, lease_seconds=LEASE) is None
        assert await store.payload("old-queued") is None
        depth = await store.queue_depth()
        assert (depth.queued, depth.running, depth.payload_bytes) == (1, 1, 0)

        # The old replica died: its jobs cannot be queued again for a new replica to run, so they fail.
        reaped = await store.reap_expired_leases(now=NOW + LEASE + 1, max_attempts=5)
        assert sorted((job.id, job.status, job.error.code) for job in reaped if job.error) == [
            ("old-queued", JobStatus.FAILED, "WORKER_LOST"),
            ("old-running", JobStatus.FAILED, "WORKER_LOST"),
        ]

        # The upgraded table is a queue like a new one.
        await store.create(
            Job(id="new", type="segmentation", status=JobStatus.QUEUED, created_at=NOW), payload=b"p"
        )
        claimed = await store.claim_next(owner="new", now=NOW + 2, lease_seconds=LEASE)
        assert claimed is not None and (claimed.job.id, claimed.job.attempts, claimed.payload) == (
            "new",
            1,
            b"p",
        )
    finally:
        await store.close()
    # A second start over the upgraded table changes nothing.
    again = PostgresJobStore(url, schema=schema, table=table)
    try:
        await again.start()
        assert (await again.get("new")).status is JobStatus.RUNNING  # type: ignore[union-attr]
    finally:
        await again.close()


async def test_postgres_rows_an_old_replica_writes_after_the_upgrade_are_never_claimed(
    postgres_target: tuple[str, str, str], engine: AsyncEngine
) -> None:
    # A rolling update: the table is upgraded while old replicas still write their own layout.
    url, schema, table = postgres_target
    store = PostgresJobStore(url, schema=schema, table=table)
    try:
        await store.start()
        await store.create(Job(id="new", type="segmentation", status=JobStatus.QUEUED, created_at=NOW + 1))
        old = old_layout(schema, table)
        async with engine.begin() as conn:
            await conn.execute(insert(old).values(old_row("old", JobStatus.QUEUED, started=False)))
        assert (await store.get("old")).attempts == 0  # type: ignore[union-attr]
        claimed = await store.claim_next(owner="new", now=NOW + 2, lease_seconds=LEASE)
        assert claimed is not None and claimed.job.id == "new"  # though "old" is older
        assert await store.claim_next(owner="new", now=NOW + 2, lease_seconds=LEASE) is None

        # An old replica cancelling a new job drops no payload: it is not served nor counted anyway.
        await store.create(
            Job(id="with-input", type="segmentation", status=JobStatus.QUEUED, created_at=NOW),
            payload=b"x" * 10,
        )
        async with engine.begin() as conn:
            await conn.execute(
                update(old).where(old.c.id == "with-input").values(status="cancelled", finished_at=NOW)
            )
        assert await store.payload("with-input") is None
        assert (await store.queue_depth()).payload_bytes == 0
    finally:
        await store.close()


async def test_postgres_an_expired_job_frees_its_key_before_it_is_purged(
    postgres_target: tuple[str, str, str],
) -> None:
    url, schema, table = postgres_target
    clock = FakeClock(NOW)
    store = PostgresJobStore(url, schema=schema, table=table, result_ttl_seconds=10, clock=clock)
    try:
        first = Job(id="first", type="segmentation", status=JobStatus.QUEUED, created_at=NOW)
        await store.create(first, idempotency_key="k")
        await store.finish("first", status=JobStatus.CANCELLED, now=NOW)
        clock.advance(5)
        # Kept (not yet expired): the key still answers with the first job.
        assert (await store.create(replace(first, id="retry"), idempotency_key="k")).id == "first"
        clock.advance(10)
        second = Job(id="second", type="segmentation", status=JobStatus.QUEUED, created_at=clock.now())
        assert await store.create(second, idempotency_key="k") == second
        assert await store.get("first") is None
    finally:
        await store.close()


def big_job(job_id: str) -> Job:
    return Job(id=job_id, type="segmentation", status=JobStatus.QUEUED, created_at=NOW)


# Past the size read with the claim: such a payload is read on its own, with its own deadline.
LARGE = b"z" * 300_000


async def test_postgres_a_claim_whose_large_payload_cannot_be_read_gives_the_job_back(
    postgres_target: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, schema, table = postgres_target
    store = PostgresJobStore(url, schema=schema, table=table, clock=FakeClock(NOW))
    try:
        await store.create(big_job("big"), payload=LARGE)

        async def unreachable(*args: object, **kwargs: object) -> None:
            raise DependencyUnavailable("PostgreSQL did not answer within 2.0 s")

        with monkeypatch.context() as patched:
            patched.setattr(store, "_read_payload", unreachable)
            with pytest.raises(DependencyUnavailable):
                await store.claim_next(owner="a", now=NOW, lease_seconds=LEASE)
        assert await store.get("big") == big_job("big")  # queued again, the attempt refunded
        claimed = await store.claim_next(owner="a", now=NOW, lease_seconds=LEASE)
        assert claimed is not None and (claimed.job.attempts, claimed.payload) == (1, LARGE)
    finally:
        await store.close()


async def test_postgres_a_job_cancelled_before_its_large_payload_is_read_is_not_handed_out(
    postgres_target: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, schema, table = postgres_target
    store = PostgresJobStore(url, schema=schema, table=table, clock=FakeClock(NOW))
    try:
        await store.create(big_job("cancelled"), payload=LARGE)
        await store.create(replace(big_job("next"), created_at=NOW + 1), payload=b"small")
        read = store._read_payload

        async def cancel_first(job_id: str, size: int, *, running_under: str | None) -> tuple[bytes] | None:
            await store.finish(job_id, status=JobStatus.CANCELLED, now=NOW)
            return await read(job_id, size, running_under=running_under)

        monkeypatch.setattr(store, "_read_payload", cancel_first)
        claimed = await store.claim_next(owner="a", now=NOW, lease_seconds=LEASE)
        assert claimed is not None and (claimed.job.id, claimed.payload) == ("next", b"small")
        assert (await store.get("cancelled")).status is JobStatus.CANCELLED  # type: ignore[union-attr]
    finally:
        await store.close()
