"""Reads split into page ranges (adapters/postgres/split_read.py) against the real PostgreSQL: the
same rows as one stream, the same max_rows rule, and only where a split cannot change the answer.
Skips like the other integration tests when PostgreSQL is absent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import adbc_driver_manager.dbapi
import asyncpg
import polars as pl
import pytest

from adapters.frames import PolarsDataset
from adapters.postgres.table_source import SqlDatasetSource
from application.errors import PayloadTooLarge
from domain.data import TableRef
from support.postgres import DSN, q, seeded_schema

pytestmark = pytest.mark.integration

ROWS = 20_000
STALE_ROWS = 3_000


async def _seed(schema: str) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        s = q(schema)
        await conn.execute(f"""
            CREATE SCHEMA {s};
            CREATE TABLE {s}.ds_wide AS
              SELECT g::bigint AS id, 't' || (g % 3) AS "tenantId", g * 0.5 AS amount,
                     CASE WHEN g % 7 = 0 THEN NULL ELSE md5(g::text) END AS note,
                     timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute' AS seen
                FROM generate_series(1, {ROWS}) AS g;
            ANALYZE {s}.ds_wide;
            CREATE VIEW {s}.ds_wide_view AS SELECT * FROM {s}.ds_wide;
            CREATE TABLE {s}.ds_stale (id bigint, pad text) WITH (autovacuum_enabled = false);
            INSERT INTO {s}.ds_stale SELECT g, repeat('x', 50) FROM generate_series(1, 10) AS g;
            ANALYZE {s}.ds_stale;
            INSERT INTO {s}.ds_stale SELECT g, repeat('x', 50) FROM generate_series(11, {STALE_ROWS}) AS g;
        """)  # fmt: skip
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    yield from seeded_schema("mlw_split", _seed)


@pytest.fixture
async def split(schema: str) -> AsyncIterator[SqlDatasetSource]:
    # Every read large enough to split, in three parts, in small batches (so parts interleave).
    # Whole-table reads are what splits: the tenant rule (tested in test_table_access.py) is off here.
    source = SqlDatasetSource(
        DSN,
        allowed_schemas=(schema,),
        streams=3,
        split_rows=1,
        batch_bytes=4096,
        require_tenant_filter=False,
    )
    yield source
    await source.close()


@pytest.fixture
async def single(schema: str) -> AsyncIterator[SqlDatasetSource]:
    source = SqlDatasetSource(DSN, allowed_schemas=(schema,), streams=1, require_tenant_filter=False)
    yield source
    await source.close()


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    original = adbc_driver_manager.dbapi.Cursor.execute

    def spy(self: Any, operation: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(operation)
        return original(self, operation, *args, **kwargs)

    monkeypatch.setattr(adbc_driver_manager.dbapi.Cursor, "execute", spy)
    return seen


async def frame_of(source: SqlDatasetSource, ref: TableRef, max_rows: int = 1_000_000) -> pl.DataFrame:
    dataset = await source.load(ref, max_rows=max_rows)
    assert isinstance(dataset, PolarsDataset)
    return dataset.frame


def parts_read(statements: list[str]) -> int:
    return sum(1 for sql in statements if "ctid >=" in sql)


async def test_a_split_read_returns_the_rows_of_one_stream(
    split: SqlDatasetSource, single: SqlDatasetSource, statements: list[str]
) -> None:
    for ref in (TableRef("ds_wide"), TableRef("ds_wide", filters={"tenantId": "t1"})):
        statements.clear()
        parted = await frame_of(split, ref)
        assert parts_read(statements) == 3
        assert sum("SET TRANSACTION SNAPSHOT" in sql for sql in statements) == 2
        whole = await frame_of(single, ref)
        assert parted.schema == whole.schema
        assert parted.height == whole.height > 0
        assert parted.sort("id").equals(whole.sort("id"))
    assert (await frame_of(split, TableRef("ds_wide"))).height == ROWS


async def test_only_reads_a_split_cannot_change_are_split(
    split: SqlDatasetSource, statements: list[str]
) -> None:
    # A limit takes the first rows the server returns; a view has no pages of its own.
    assert (await frame_of(split, TableRef("ds_wide", limit=5_000))).height == 5_000
    assert (await frame_of(split, TableRef("ds_wide_view", columns=("id",)))).height == ROWS
    assert parts_read(statements) == 0


async def test_max_rows_holds_across_parts(split: SqlDatasetSource, statements: list[str]) -> None:
    # Counted first: refused before any part reads.
    with pytest.raises(PayloadTooLarge):
        await split.load(TableRef("ds_wide"), max_rows=ROWS - 1)
    assert parts_read(statements) == 0
    # The estimate says 10 rows, so no count: the parts' shared row count refuses all the same.
    with pytest.raises(PayloadTooLarge):
        await split.load(TableRef("ds_stale"), max_rows=100)
    assert parts_read(statements) == 3
    frame = await frame_of(split, TableRef("ds_stale"), max_rows=STALE_ROWS)
    assert sorted(frame["id"].to_list()) == list(range(1, STALE_ROWS + 1))
    # The source is still fine after parts were stopped.
    assert (await frame_of(split, TableRef("ds_wide", filters={"tenantId": "t2"}))).height == len(
        range(2, ROWS + 1, 3)
    )
