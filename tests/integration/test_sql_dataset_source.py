"""SqlDatasetSource against the real PostgreSQL (127.0.0.1:5432, database `test`, user `postgres`).

Every table lives in a schema made for this run (`mlw_sql_<random>`, plus `<that>_other`) and dropped
after, so runs never see each other's data. Skips with the reason when PostgreSQL is absent, unless
ML_WORKER_REQUIRE_SERVICES=1, which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import adbc_driver_manager.dbapi
import asyncpg
import polars as pl
import pytest
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from adapters.frames import PolarsDataset
from adapters.postgres.engine import libpq_conninfo, schema_from_url
from adapters.postgres.table_source import SqlDatasetSource
from application.errors import DependencyUnavailable, PayloadTooLarge
from domain.data import ColumnKind, InlineRows, TableRef
from domain.errors import ValidationFailed

pytestmark = pytest.mark.integration

DSN = os.environ.get("ML_WORKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
DSN_PARTS = make_url(DSN)


def dsn_with(**changes: Any) -> str:
    return str(DSN_PARTS.set(**changes).render_as_string(hide_password=False))


BIG = 1_000_000

CUSTOMER_COLUMNS = (
    "id",
    "tenantId",
    "name",
    "age",
    "revenue",
    "score",
    "visits",
    "active",
    "signed_up",
    "last_seen",
    "birthday",
    "Region",
    "notes",
)
PLUS_TWO = timezone(timedelta(hours=2))
CUSTOMERS: list[tuple[Any, ...]] = [
    (1, "t1", "Ann", 31, Decimal("1234.50"), 0.25, 3, True,
     datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), datetime(2024, 5, 6, 7, 8, 9), date(1990, 1, 31),
     "north", "plain"),
    (2, "t1", None, None, None, None, None, None, None, None, None, None, None),
    (3, "t1", "Bob, Jr.", 45, Decimal("-0.01"), -1.5, 0, False,
     datetime(1999, 12, 31, 23, 59, 59, tzinfo=PLUS_TWO), datetime(2000, 1, 1), date(1970, 1, 1),
     "south", 'says "hi"\nand leaves'),
    (4, "t1", "", 30, Decimal("10.50"), math.inf, -7, None,
     datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), None, date(1969, 12, 31), "north", ""),
    (5, "t1", "Zoë 🚀", 30, Decimal("99999999.99"), 1e-300, 32767, True,
     None, datetime(2024, 2, 29, 23, 59, 59, 999999), date(2024, 2, 29), "east", "a,b\r\nc"),
    (6, "t2", "Carl", 52, Decimal("0.00"), 3.0, 1, True,
     datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1), date(2000, 6, 1), "west", None),
    (7, "t2", "Dana", None, Decimal("5.25"), 2.5, 2, False,
     datetime(2023, 6, 2, tzinfo=UTC), datetime(2023, 6, 2), date(2000, 6, 2), "north", "x"),
    (8, "t2", "Eve", 23, Decimal("7.75"), None, 4, None,
     datetime(2023, 6, 3, tzinfo=UTC), None, None, "south", "y"),
    (9, "t3", "Finn", 61, Decimal("1.00"), 0.0, 5, True,
     datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC), datetime(2021, 3, 4), date(1961, 3, 4), "east", "z"),
    (10, "t3", "Gus", 18, Decimal("2.00"), 0.5, 6, False,
     datetime(2021, 3, 5, tzinfo=UTC), datetime(2021, 3, 5), date(2006, 3, 5), "west", "w"),
    (11, "t3", "Hal", 33, Decimal("3.00"), 0.75, 7, True,
     datetime(2021, 3, 6, tzinfo=UTC), datetime(2021, 3, 6), date(1991, 3, 6), "north", "v"),
    (12, "t3", "Ida", 29, Decimal("4.00"), 1.0, 8, None,
     datetime(2021, 3, 7, tzinfo=UTC), datetime(2021, 3, 7), date(1995, 3, 7), None, "u"),
]  # fmt: skip
CUSTOMER_DTYPES = {
    "id": pl.Int64,
    "tenantId": pl.String,
    "name": pl.String,
    "age": pl.Int32,
    "revenue": pl.Float64,
    "score": pl.Float64,
    "visits": pl.Int16,
    "active": pl.Boolean,
    "signed_up": pl.Datetime("us", "UTC"),
    "last_seen": pl.Datetime("us"),
    "birthday": pl.Date,
    "Region": pl.String,
    "notes": pl.String,
}
# ds_customers is tenant-scoped (it has a tenantId column): every read names its tenants.
ALL_TENANTS = {"tenantId": ["t1", "t2", "t3"]}
MANY_TENANTS = {"tenantId": ["t0", "t1", "t2"]}
MANY = 250
STALE_ANALYSED, STALE_ADDED = 10, 2_000
WEIRD_TABLE = 'ds_we"ird; drop table x'
WEIRD_COLUMN = 'co"l, umn'

HOSTILE_NAMES = [
    "ds_customers; drop table x",
    'ds_customers"; DROP TABLE x; --',
    "ds_customers' OR '1'='1",
    "ds_customers--",
    "DS_CUSTOMERS",
    "ds_cüstomers",
    "ds_customers\u202e",
    "\uff44\uff53_customers",  # fullwidth letters
    "ds_customers\x00",
    "x" * 10_000,
    "",
]


def many_note(i: int) -> str | None:
    # Long values made mostly of quoted newlines, so that the COPY stream's chunks end inside them.
    multiline = f"line {i}\n" + '"quoted", more\n' * 400
    return [None, "", multiline, f"crlf {i}\r\nend", f"n{i}"][i % 5]


def expected_customer(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A seeded row as polars returns it: numeric as float, timestamptz in UTC."""
    out = list(row)
    out[4] = None if row[4] is None else float(row[4])
    out[8] = None if row[8] is None else row[8].astimezone(UTC)
    return tuple(out)


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Schemas:
    main: str
    other: str


# --- fixtures -------------------------------------------------------------------------------------


async def _reachable(dsn: str) -> str | None:
    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@pytest.fixture(scope="module")
def sql_dsn() -> str:
    reason = asyncio.run(_reachable(DSN))
    if reason is not None:
        message = f"PostgreSQL is not reachable at {DSN} ({reason})"
        if os.environ.get("ML_WORKER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message} and ML_WORKER_REQUIRE_SERVICES=1")
        pytest.skip(message)
    return DSN


async def _seed(dsn: str, s: Schemas) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        m, o = q(s.main), q(s.other)
        await conn.execute(f"""
            CREATE SCHEMA {m};
            CREATE SCHEMA {o};
            CREATE TABLE {m}.x (id int);
            INSERT INTO {m}.x VALUES (1);
            CREATE TABLE {m}.ds_customers (
                id bigint PRIMARY KEY, "tenantId" text NOT NULL, name text, age integer,
                revenue numeric(12, 2), score double precision, visits smallint, active boolean,
                signed_up timestamptz, last_seen timestamp, birthday date, "Region" text, notes text);
            CREATE TABLE {m}.ds_many (id bigint, "tenantId" text, amount numeric, notes text);
            CREATE TABLE {m}.ds_stale (id bigint) WITH (autovacuum_enabled = false);
            CREATE TABLE {m}.{q(WEIRD_TABLE)} ({q(WEIRD_COLUMN)} text);
            INSERT INTO {m}.{q(WEIRD_TABLE)} VALUES ('ok');
            CREATE TABLE {m}.ds_both (label text);
            INSERT INTO {m}.ds_both VALUES ('main');
            CREATE TABLE {o}.ds_both (label text);
            INSERT INTO {o}.ds_both VALUES ('other');
            CREATE TABLE {o}.ds_other (id int, label text);
            INSERT INTO {o}.ds_other VALUES (1, 'a'), (2, 'b');
            CREATE VIEW {m}.ds_slow AS SELECT 1 AS one FROM pg_sleep(5);
            CREATE FUNCTION {m}.sneaky() RETURNS int LANGUAGE sql VOLATILE
                AS 'INSERT INTO {m}.x VALUES (99) RETURNING 1';
            CREATE VIEW {m}.ds_sneaky AS SELECT {m}.sneaky() AS v;
        """)  # fmt: skip
        await conn.copy_records_to_table(
            "ds_customers", schema_name=s.main, records=CUSTOMERS, columns=list(CUSTOMER_COLUMNS)
        )
        await conn.copy_records_to_table(
            "ds_many",
            schema_name=s.main,
            records=[(i, f"t{i % 3}", Decimal(i) / 4, many_note(i)) for i in range(1, MANY + 1)],
        )
        await conn.copy_records_to_table(
            "ds_stale", schema_name=s.main, records=[(i,) for i in range(STALE_ANALYSED)]
        )
        await conn.execute(f"ANALYZE {m}.ds_customers; ANALYZE {m}.ds_many; ANALYZE {m}.ds_stale")
        # Rows added after ANALYZE (autovacuum is off for this table): the estimate stays at 10.
        await conn.copy_records_to_table(
            "ds_stale", schema_name=s.main, records=[(i,) for i in range(STALE_ADDED)]
        )
    finally:
        await conn.close()


async def _drop(dsn: str, s: Schemas) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"DROP SCHEMA IF EXISTS {q(s.main)} CASCADE; DROP SCHEMA IF EXISTS {q(s.other)} CASCADE"
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def sql_schemas(sql_dsn: str) -> Iterator[Schemas]:
    main = f"mlw_sql_{uuid.uuid4().hex[:12]}"
    schemas = Schemas(main, f"{main}_other")
    try:
        asyncio.run(_seed(sql_dsn, schemas))
        yield schemas
    finally:
        asyncio.run(_drop(sql_dsn, schemas))


@pytest.fixture
async def sql_source(sql_dsn: str, sql_schemas: Schemas) -> AsyncIterator[SqlDatasetSource]:
    source = SqlDatasetSource(sql_dsn, allowed_schemas=(sql_schemas.main,), connect_timeout_s=3)
    yield source
    await source.close()


async def direct_fetchval(sql: str) -> Any:
    conn = await asyncpg.connect(DSN)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def load_frame(source: SqlDatasetSource, ref: TableRef, max_rows: int = BIG) -> pl.DataFrame:
    dataset = await source.load(ref, max_rows=max_rows)
    assert isinstance(dataset, PolarsDataset)
    return dataset.frame


async def ids(source: SqlDatasetSource, **filters: Any) -> list[int]:
    filters = {**ALL_TENANTS, **filters}
    frame = await load_frame(source, TableRef("ds_customers", columns=("id",), filters=filters))
    return sorted(frame["id"].to_list())


# --- reading --------------------------------------------------------------------------------------


async def test_reads_every_column_with_its_type_and_value(sql_source: SqlDatasetSource) -> None:
    dataset = await sql_source.load(TableRef("ds_customers", filters=ALL_TENANTS), max_rows=BIG)
    assert isinstance(dataset, PolarsDataset)
    frame = dataset.frame.sort("id")
    assert frame.columns == list(CUSTOMER_COLUMNS)
    assert dict(frame.schema) == CUSTOMER_DTYPES
    assert frame.rows() == [expected_customer(row) for row in CUSTOMERS]
    assert dataset.row_count == len(CUSTOMERS)
    assert dataset.schema["revenue"] is ColumnKind.NUMERIC
    assert dataset.schema["active"] is ColumnKind.BOOLEAN
    assert dataset.schema["signed_up"] is ColumnKind.TEMPORAL
    assert dataset.schema["tenantId"] is ColumnKind.CATEGORICAL


async def test_empty_string_and_null_stay_distinct(sql_source: SqlDatasetSource) -> None:
    ref = TableRef("ds_customers", columns=("id", "name", "notes"), filters=ALL_TENANTS)
    frame = (await load_frame(sql_source, ref)).sort("id")
    assert frame.filter(pl.col("id") == 4).row(0) == (4, "", "")
    assert frame.filter(pl.col("id") == 2).row(0) == (2, None, None)


async def test_columns_come_in_the_requested_order(sql_source: SqlDatasetSource) -> None:
    ref = TableRef("ds_customers", columns=("notes", "Region", "id"), filters=ALL_TENANTS)
    frame = await load_frame(sql_source, ref)
    assert frame.columns == ["notes", "Region", "id"]
    assert sorted(frame["id"].to_list()) == list(range(1, 13))


async def test_no_matching_rows_still_gives_typed_columns(sql_source: SqlDatasetSource) -> None:
    frame = await load_frame(sql_source, TableRef("ds_customers", filters={"tenantId": "nobody"}))
    assert frame.height == 0
    assert dict(frame.schema) == CUSTOMER_DTYPES


async def test_tenant_filter_returns_only_that_tenant(sql_source: SqlDatasetSource) -> None:
    assert await ids(sql_source, tenantId="t1") == [1, 2, 3, 4, 5]
    assert await ids(sql_source, tenantId="t2") == [6, 7, 8]
    frame = await load_frame(sql_source, TableRef("ds_customers", filters={"tenantId": "t3"}))
    assert set(frame["tenantId"].to_list()) == {"t3"}


async def test_filter_values_are_data_not_sql(sql_source: SqlDatasetSource, sql_schemas: Schemas) -> None:
    assert await ids(sql_source, tenantId="t1' OR '1'='1") == []
    assert await ids(sql_source, tenantId="t1'); DROP TABLE x; --") == []
    assert await direct_fetchval(f"SELECT count(*) FROM {q(sql_schemas.main)}.x") == 1


async def test_null_list_and_typed_filters(sql_source: SqlDatasetSource) -> None:
    assert await ids(sql_source, age=None) == [2, 7]
    assert await ids(sql_source, tenantId=["t2", "t3"]) == [6, 7, 8, 9, 10, 11, 12]
    assert await ids(sql_source, active=[True, None]) == [1, 2, 4, 5, 6, 8, 9, 11, 12]
    assert await ids(sql_source, active=False) == [3, 7, 10]
    assert await ids(sql_source, tenantId=[]) == []
    assert await ids(sql_source, age=30) == [4, 5]
    assert await ids(sql_source, age=30.0) == [4, 5]
    assert await ids(sql_source, revenue=10.5) == [4]
    assert await ids(sql_source, revenue=[1, 2.0, "3.00"]) == [9, 10, 11]
    assert await ids(sql_source, signed_up="2024-01-02T03:04:05Z") == [4]
    assert await ids(sql_source, signed_up="1999-12-31 21:59:59") == [3]  # no offset: read as UTC
    assert await ids(sql_source, birthday="1970-01-01") == [3]
    assert await ids(sql_source, tenantId="t1", age=30, Region="north") == [4]


async def test_limit_bounds_the_rows(sql_source: SqlDatasetSource) -> None:
    frame = await load_frame(sql_source, TableRef("ds_customers", filters=ALL_TENANTS, limit=3))
    assert frame.height == 3
    frame = await load_frame(sql_source, TableRef("ds_customers", filters={"tenantId": "t2"}, limit=2))
    assert frame.height == 2
    assert set(frame["tenantId"].to_list()) == {"t2"}


@pytest.mark.parametrize("batch_bytes", [1, 3_000, 16 << 20])
async def test_batches_are_cut_between_records_only(
    sql_dsn: str, sql_schemas: Schemas, batch_bytes: int
) -> None:
    # One row per batch, a few rows, everything in one: the frame is the same.
    source = SqlDatasetSource(sql_dsn, allowed_schemas=(sql_schemas.main,), batch_bytes=batch_bytes)
    try:
        frame = (await load_frame(source, TableRef("ds_many", filters=MANY_TENANTS))).sort("id")
    finally:
        await source.close()
    assert frame.rows() == [(i, f"t{i % 3}", i / 4, many_note(i)) for i in range(1, MANY + 1)]


async def test_names_with_quotes_from_the_catalogue_are_quoted(
    sql_source: SqlDatasetSource, sql_schemas: Schemas
) -> None:
    frame = await load_frame(sql_source, TableRef(WEIRD_TABLE, columns=(WEIRD_COLUMN,)))
    assert frame.rows() == [("ok",)]
    frame = await load_frame(sql_source, TableRef(WEIRD_TABLE, filters={WEIRD_COLUMN: "ok"}))
    assert frame.columns == [WEIRD_COLUMN]
    assert frame.height == 1
    assert await direct_fetchval(f"SELECT count(*) FROM {q(sql_schemas.main)}.x") == 1


# --- names ----------------------------------------------------------------------------------------


async def test_unknown_names_are_named_in_the_error(sql_source: SqlDatasetSource) -> None:
    with pytest.raises(ValidationFailed) as table_error:
        await sql_source.load(TableRef("ds_nowhere"), max_rows=BIG)
    assert "ds_nowhere" in table_error.value.message
    assert table_error.value.details[0]["field"] == "data.table"

    with pytest.raises(ValidationFailed) as column_error:
        await sql_source.load(TableRef("ds_customers", columns=("id", "shoe_size", "region")), max_rows=BIG)
    fields = {d["field"]: d["message"] for d in column_error.value.details}
    assert set(fields) == {"data.columns[1]", "data.columns[2]"}  # case-sensitive: "Region" exists
    assert "shoe_size" in fields["data.columns[1]"]

    with pytest.raises(ValidationFailed) as filter_error:
        await sql_source.load(TableRef("ds_customers", filters={"tenantid": "t1"}), max_rows=BIG)
    assert filter_error.value.details[0]["field"] == "data.filters.tenantid"
    assert "tenantid" in filter_error.value.message


@pytest.fixture
def sql_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL text sent through the drivers while the test runs (the table source's ADBC cursors,
    and asyncpg), as "method: text" (bound arguments are not SQL)."""
    seen: list[str] = []
    spied = [(asyncpg.connection.Connection, m) for m in ("execute", "fetch", "fetchval", "fetchrow",
             "copy_from_query", "prepare", "cursor")]  # fmt: skip
    spied += [(adbc_driver_manager.dbapi.Cursor, m) for m in ("execute", "executemany", "adbc_prepare")]
    for owner, method in spied:
        original = getattr(owner, method)

        def spy(
            self: Any,
            query: str,
            *args: Any,
            __original: Any = original,
            __method: str = method,
            **kwargs: Any,
        ) -> Any:
            seen.append(f"{__method}: {query}")
            return __original(self, query, *args, **kwargs)

        monkeypatch.setattr(owner, method, spy)
    return seen


@pytest.mark.parametrize("where", ["table", "column", "filter"])
@pytest.mark.parametrize(
    "name", HOSTILE_NAMES, ids=lambda n: repr(n[:30]) + (f"+{len(n)}" if len(n) > 30 else "")
)
async def test_hostile_names_are_refused_and_run_no_sql(
    sql_source: SqlDatasetSource, sql_schemas: Schemas, sql_statements: list[str], where: str, name: str
) -> None:
    ref = {
        "table": TableRef(name),
        "column": TableRef("ds_customers", columns=("id", name)),
        "filter": TableRef("ds_customers", filters={name: "t1"}),
    }[where]
    with pytest.raises(ValidationFailed) as error:
        await sql_source.load(ref, max_rows=BIG)
    assert len(error.value.message) < 300
    if name:
        assert not [sql for sql in sql_statements if name in sql]
    schema = q(sql_schemas.main)
    assert await direct_fetchval(f"SELECT count(*) FROM {schema}.ds_customers") == len(CUSTOMERS)
    assert await direct_fetchval(f"SELECT count(*) FROM {schema}.x") == 1


async def test_schema_qualified_names_only_for_allowed_schemas(sql_dsn: str, sql_schemas: Schemas) -> None:
    main, other = sql_schemas.main, sql_schemas.other
    only_main = SqlDatasetSource(sql_dsn, allowed_schemas=(main,))
    both = SqlDatasetSource(sql_dsn, allowed_schemas=(other, main))
    try:
        qualified = TableRef(f"{main}.ds_customers", filters=ALL_TENANTS)
        assert (await load_frame(only_main, qualified)).height == len(CUSTOMERS)
        for refused in (
            f"{other}.ds_other",
            "public.ds_customers",
            "pg_catalog.pg_authid",
            "information_schema.tables",
        ):
            with pytest.raises(ValidationFailed) as error:
                await only_main.load(TableRef(refused), max_rows=BIG)
            assert "not readable" in error.value.message
        with pytest.raises(ValidationFailed):
            await only_main.load(TableRef("ds_other"), max_rows=BIG)  # unqualified: searched in main only

        assert (await load_frame(both, TableRef(f"{other}.ds_other"))).rows() == [(1, "a"), (2, "b")]
        assert (await load_frame(both, TableRef("ds_other"))).height == 2
        # Unqualified names resolve in the order of allowed_schemas, like a search_path.
        assert (await load_frame(both, TableRef("ds_both"))).rows() == [("other",)]
        assert (await load_frame(only_main, TableRef("ds_both"))).rows() == [("main",)]
    finally:
        await only_main.close()
        await both.close()


# --- size -----------------------------------------------------------------------------------------


async def test_more_rows_than_max_rows_without_limit_is_payload_too_large(
    sql_source: SqlDatasetSource, sql_statements: list[str]
) -> None:
    with pytest.raises(PayloadTooLarge) as error:
        await sql_source.load(TableRef("ds_many", filters=MANY_TENANTS), max_rows=MANY - 1)
    assert "limit" in error.value.message
    assert str(MANY - 1) in error.value.message
    # Refused on a count, before any row was read: the only statement naming the table is the count.
    naming = [sql for sql in sql_statements if '"ds_many"' in sql]
    assert naming and all(sql.startswith("execute: SELECT count(*)") for sql in naming)
    everyone = TableRef("ds_many", filters=MANY_TENANTS)
    assert (await load_frame(sql_source, everyone, max_rows=MANY)).height == MANY
    hundred = TableRef("ds_many", filters=MANY_TENANTS, limit=100)
    assert (await load_frame(sql_source, hundred, max_rows=MANY - 1)).height == 100
    # A limit above max_rows is only refused when the rows are really there.
    with pytest.raises(PayloadTooLarge):
        await sql_source.load(TableRef("ds_many", filters=MANY_TENANTS, limit=10_000), max_rows=MANY - 1)
    filtered = TableRef("ds_many", filters={"tenantId": "t1"}, limit=10_000)
    assert (await load_frame(sql_source, filtered, max_rows=MANY - 1)).height == len(range(1, MANY + 1, 3))


async def test_stale_statistics_cannot_let_too_many_rows_through(sql_dsn: str, sql_schemas: Schemas) -> None:
    # The estimate says 10 rows, so no count is made first: the read itself (limited to max_rows + 1
    # rows, in small batches here) must refuse all the same.
    source = SqlDatasetSource(sql_dsn, allowed_schemas=(sql_schemas.main,), batch_bytes=100)
    total = STALE_ANALYSED + STALE_ADDED
    try:
        for _ in range(2):
            with pytest.raises(PayloadTooLarge):
                await source.load(TableRef("ds_stale"), max_rows=100)
            frame = await load_frame(source, TableRef("ds_stale"), max_rows=total)
            assert frame.height == total
    finally:
        await source.close()


# --- failures -------------------------------------------------------------------------------------


async def test_wrong_filter_values_are_validation_errors(sql_source: SqlDatasetSource) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"age": True}, "data.filters.age"),
        ({"age": 1.5}, "data.filters.age"),
        ({"active": 1}, "data.filters.active"),
        ({"tenantId": "t1\x00"}, "data.filters.tenantId"),
        ({"age": "abc"}, "data.filters"),  # refused by the server's cast
        ({"birthday": "not a date"}, "data.filters"),
    ]
    for filters, field in cases:
        with pytest.raises(ValidationFailed) as error:
            ref = TableRef("ds_customers", filters={"tenantId": "t1", **filters})
            await sql_source.load(ref, max_rows=BIG)
        assert error.value.details[0]["field"] == field, filters
    assert await ids(sql_source, tenantId="t2") == [6, 7, 8]  # the connection survived


async def test_bad_requests_are_refused_before_the_database(sql_source: SqlDatasetSource) -> None:
    for ref in (
        TableRef("ds_customers", columns=()),
        TableRef("ds_customers", columns=("id", "id")),
        TableRef("ds_customers", limit=0),
        TableRef("ds_customers", limit=-5),
    ):
        with pytest.raises(ValidationFailed):
            await sql_source.load(ref, max_rows=BIG)
    with pytest.raises(ValidationFailed) as error:
        await sql_source.load(InlineRows(rows=[{"a": 1}]), max_rows=BIG)
    assert "table" in error.value.message


async def test_the_transaction_is_read_only(sql_source: SqlDatasetSource, sql_schemas: Schemas) -> None:
    with pytest.raises(ValidationFailed) as error:
        await sql_source.load(TableRef("ds_sneaky"), max_rows=BIG)
    assert "read-only" in error.value.message
    assert await direct_fetchval(f"SELECT count(*) FROM {q(sql_schemas.main)}.x") == 1


async def test_statement_timeout_is_dependency_unavailable(sql_dsn: str, sql_schemas: Schemas) -> None:
    source = SqlDatasetSource(sql_dsn, allowed_schemas=(sql_schemas.main,), statement_timeout_ms=300)
    try:
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable) as error:
            await source.load(TableRef("ds_slow"), max_rows=BIG)
        assert time.monotonic() - started < 3
        assert "statement timeout" in error.value.message
        everyone = TableRef("ds_customers", filters=ALL_TENANTS)
        assert (await load_frame(source, everyone)).height == len(CUSTOMERS)
    finally:
        await source.close()


async def test_a_cancelled_read_leaves_the_source_usable(sql_dsn: str, sql_schemas: Schemas) -> None:
    source = SqlDatasetSource(sql_dsn, allowed_schemas=(sql_schemas.main,))
    try:
        slow = asyncio.ensure_future(source.load(TableRef("ds_slow"), max_rows=BIG))
        await asyncio.sleep(0.5)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        for _ in range(3):
            everyone = TableRef("ds_customers", filters=ALL_TENANTS)
            assert (await load_frame(source, everyone)).height == len(CUSTOMERS)
    finally:
        await source.close()


async def test_the_statement_spy_sees_the_adapter_sql(
    sql_source: SqlDatasetSource, sql_statements: list[str]
) -> None:
    # Guards the hostile-name test: an empty record there must mean "no SQL", not "spy blind".
    await sql_source.load(TableRef("ds_customers", filters={"tenantId": "tenant-zq"}), max_rows=BIG)
    assert any("information_schema.tables" in sql for sql in sql_statements)
    assert any('"ds_customers"' in sql and "current_setting" in sql for sql in sql_statements)
    assert not any("tenant-zq" in sql for sql in sql_statements)  # the value travelled as a parameter


async def test_unreachable_database_fails_fast() -> None:
    source = SqlDatasetSource("postgresql://postgres@127.0.0.1:1/test", connect_timeout_s=2)
    try:
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            await source.load(TableRef("ds_customers"), max_rows=BIG)
        reason = await source.check()
        assert reason is not None and "PostgreSQL" in reason
        assert time.monotonic() - started < 4
    finally:
        await source.close()


async def test_recovers_when_the_database_comes_back(sql_schemas: Schemas) -> None:
    proxy = TcpProxy(DSN_PARTS.host or "127.0.0.1", DSN_PARTS.port or 5432)
    await proxy.start()
    await proxy.stop()  # the port is now known and closed: the database is "down"
    source = SqlDatasetSource(
        dsn_with(host="127.0.0.1", port=proxy.port),
        allowed_schemas=(sql_schemas.main,),
        connect_timeout_s=2,
    )
    ref = TableRef("ds_customers", filters={"tenantId": "t2"})
    try:
        with pytest.raises(DependencyUnavailable):
            await source.load(ref, max_rows=BIG)
        assert await source.check() is not None

        await proxy.start()
        assert (await load_frame(source, ref)).height == 3
        assert await source.check() is None

        # A restart while idle costs a reconnect, not a failed request: pooled connections are pinged.
        await proxy.stop()
        await proxy.start()
        assert (await load_frame(source, ref)).height == 3

        await proxy.stop()  # drops the pooled connection too
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable):
            await source.load(ref, max_rows=BIG)
        assert time.monotonic() - started < 5
        assert await source.check() is not None

        await proxy.start()
        assert (await load_frame(source, ref)).height == 3
        assert await source.check() is None
    finally:
        await source.close()
        await proxy.stop()


async def test_a_silent_network_is_given_up_on_after_the_statement_timeout(sql_schemas: Schemas) -> None:
    # The server's statement timeout cannot help when nothing reaches it: the source stops waiting
    # for its (synchronous) driver after the timeout plus the connect timeout, and recovers after.
    proxy = TcpProxy(DSN_PARTS.host or "127.0.0.1", DSN_PARTS.port or 5432)
    await proxy.start()
    source = SqlDatasetSource(
        dsn_with(host="127.0.0.1", port=proxy.port),
        allowed_schemas=(sql_schemas.main,),
        statement_timeout_ms=500,
        connect_timeout_s=1,
    )
    ref = TableRef("ds_customers", filters=ALL_TENANTS)
    try:
        assert (await load_frame(source, ref)).height == len(CUSTOMERS)  # a pooled connection now
        proxy.pause()
        started = time.monotonic()
        with pytest.raises(DependencyUnavailable) as error:
            await source.load(ref, max_rows=BIG)
        assert "statement timeout" in error.value.message
        assert time.monotonic() - started < 5  # 1.5 s budget; unguarded, it would wait for TCP keepalives
        proxy.resume()
        for _ in range(2):
            assert (await load_frame(source, ref)).height == len(CUSTOMERS)
    finally:
        await source.close()
        await proxy.stop()


async def test_check_is_none_when_the_database_answers(sql_source: SqlDatasetSource) -> None:
    assert await sql_source.check() is None


@pytest.mark.parametrize(
    "url",
    [
        dsn_with(drivername="postgresql"),
        dsn_with(drivername="postgres"),
        dsn_with(query={"sslmode": "disable", "schema": "public", "connection_limit": "5"}),
        dsn_with(query={"application_name": "platform", "pgbouncer": "true"}),
    ],
)
async def test_platform_url_forms_work(sql_dsn: str, sql_schemas: Schemas, url: str) -> None:
    source = SqlDatasetSource(url, allowed_schemas=(sql_schemas.main,))
    try:
        ref = TableRef("ds_customers", columns=("id",), filters=ALL_TENANTS)
        assert (await load_frame(source, ref)).height == len(CUSTOMERS)
    finally:
        await source.close()


def test_url_translation() -> None:
    conninfo = libpq_conninfo(
        "postgres://u:p%40ss@db:6543/app?sslmode=require&schema=x&pgbouncer=true&connection_limit=5",
        connect_timeout_s=0.5,
    )
    params = dict(part.split("=", 1) for part in conninfo.split(" "))
    assert {k: params[k] for k in ("host", "port", "user", "password", "dbname", "sslmode")} == {
        "host": "'db'",
        "port": "'6543'",
        "user": "'u'",
        "password": "'p@ss'",
        "dbname": "'app'",
        "sslmode": "'require'",
    }
    assert params["connect_timeout"] == "'2'"  # libpq's smallest
    assert params["application_name"] == "'ml-worker'"
    assert not {"schema", "pgbouncer", "connection_limit"} & set(params)  # libpq would refuse them
    quoted = libpq_conninfo("postgresql://u:it's%20a%5Cpw@db/app", connect_timeout_s=5)
    assert "password='it\\'s a\\\\pw'" in quoted
    with pytest.raises(ValueError):
        libpq_conninfo("mysql://u@db/app", connect_timeout_s=5)
    assert schema_from_url("postgresql://u@db/app?schema=tenant_data") == "tenant_data"
    assert schema_from_url("postgresql://u@db/app") is None
