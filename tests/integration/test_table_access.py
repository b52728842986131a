"""Which tables the `table` form can read, against the real PostgreSQL: only names matching the
table pattern (default `^ds_`), never the job store's tables (whatever the pattern), and a
tenant-scoped table (one with a `tenantId` column) only with a `tenantId` filter. A refused name
gets the answer of a missing table and runs no SQL, so the worker tells nobody which tables exist.

Tables live in a schema made for this run (`mlw_access_<random>`) and dropped after."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import adbc_driver_manager.dbapi
import asyncpg
import pytest

from adapters.frames import PolarsDataset
from adapters.postgres.job_store import PostgresJobStore
from adapters.postgres.table_source import SqlDatasetSource
from domain.data import TableRef
from domain.errors import ValidationFailed
from domain.jobs import Job, JobStatus

pytestmark = pytest.mark.integration

DSN = os.environ.get("ML_WORKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BIG = 1_000_000


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _reachable() -> str | None:
    try:
        conn = await asyncpg.connect(DSN, timeout=3)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def _seed(schema: str) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        s = q(schema)
        await conn.execute(f"""
            CREATE SCHEMA {s};
            CREATE TABLE {s}.ds_people (id int, "tenantId" text, age int);
            INSERT INTO {s}.ds_people VALUES (1, 't1', 30), (2, 't1', 40), (3, 't2', 50);
            CREATE TABLE {s}.ds_plain (id int);
            INSERT INTO {s}.ds_plain VALUES (1), (2);
            CREATE TABLE {s}.people (id int);
            INSERT INTO {s}.people VALUES (7);
        """)  # fmt: skip
    finally:
        await conn.close()
    # The job store's own table, made by the store itself, holding a finished job's result.
    store = PostgresJobStore(DSN, schema=schema)
    await store.start()
    try:
        now = time.time()
        job = Job(id="secret-job", type="segmentation", status=JobStatus.QUEUED, created_at=now)
        await store.create(job, payload=b"a tenant's input")
    finally:
        await store.close()


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    reason = asyncio.run(_reachable())
    if reason is not None:
        if os.environ.get("ML_WORKER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is not reachable at {DSN} ({reason}) and ML_WORKER_REQUIRE_SERVICES=1")
        pytest.skip(f"PostgreSQL is not reachable at {DSN} ({reason})")
    name = f"mlw_access_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_seed(name))
        yield name
    finally:

        async def drop() -> None:
            conn = await asyncpg.connect(DSN)
            await conn.execute(f"DROP SCHEMA IF EXISTS {q(name)} CASCADE")
            await conn.close()

        asyncio.run(drop())


@pytest.fixture
async def make_source(schema: str) -> AsyncIterator[Callable[..., SqlDatasetSource]]:
    made: list[SqlDatasetSource] = []

    def make(**options: Any) -> SqlDatasetSource:
        source = SqlDatasetSource(DSN, allowed_schemas=(schema,), connect_timeout_s=3, **options)
        made.append(source)
        return source

    yield make
    for source in made:
        await source.close()


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL text sent through the drivers while the test runs (the table source's ADBC cursors,
    and asyncpg)."""
    seen: list[str] = []
    spied = [(asyncpg.connection.Connection, m) for m in ("execute", "fetch", "fetchval", "fetchrow",
             "copy_from_query", "prepare", "cursor")]  # fmt: skip
    spied += [(adbc_driver_manager.dbapi.Cursor, m) for m in ("execute", "executemany", "adbc_prepare")]
    for owner, method in spied:
        original = getattr(owner, method)

        def spy(self: Any, query: str, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            seen.append(query)
            return __original(self, query, *args, **kwargs)

        monkeypatch.setattr(owner, method, spy)
    return seen


async def refusal(source: SqlDatasetSource, ref: TableRef) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as error:
        await source.load(ref, max_rows=BIG)
    return error.value


def without(error: ValidationFailed, name: str) -> tuple[str, list[dict[str, Any]]]:
    """The answer with the table's name taken out, to compare the answers for two names."""
    shown = repr(name)
    return error.message.replace(shown, "<name>"), [
        {key: str(value).replace(shown, "<name>") for key, value in detail.items()}
        for detail in error.details
    ]


async def rows(source: SqlDatasetSource, ref: TableRef) -> list[tuple[Any, ...]]:
    dataset = await source.load(ref, max_rows=BIG)
    assert isinstance(dataset, PolarsDataset)
    return sorted(dataset.frame.rows())


# ------------------------------------------------------------------------------------- the pattern


async def test_a_table_outside_the_pattern_is_answered_as_missing_and_runs_no_sql(
    make_source: Any, schema: str, statements: list[str]
) -> None:
    source = make_source()
    for prefix in ("", f"{schema}."):
        missing = await refusal(source, TableRef(f"{prefix}ds_missing"))
        assert statements, "the missing table was looked up in the catalogue"
        statements.clear()
        refused = await refusal(source, TableRef(f"{prefix}people"))
        assert statements == [], "a refused name must not reach the database"
        assert without(refused, f"{prefix}people") == without(missing, f"{prefix}ds_missing")
        assert refused.details[0]["field"] == "data.table"
    # The table is there: a pattern that admits it reads it.
    assert await rows(make_source(table_pattern="^(ds_|people$)"), TableRef("people")) == [(7,)]


async def test_the_pattern_is_a_regular_expression_searched_in_the_bare_name(
    make_source: Any, schema: str
) -> None:
    plain = make_source(table_pattern="plain$")
    assert await rows(plain, TableRef("ds_plain")) == [(1,), (2,)]
    assert await rows(plain, TableRef(f"{schema}.ds_plain")) == [(1,), (2,)]
    await refusal(plain, TableRef("people"))
    with pytest.raises(Exception, match="unterminated"):
        make_source(table_pattern="(")


# ----------------------------------------------------------------------------- the job store's table


@pytest.mark.parametrize("pattern", ["^ds_", ".*", "^ml_worker_jobs$", "jobs"])
async def test_the_job_store_table_is_never_readable(
    make_source: Any, schema: str, statements: list[str], pattern: str
) -> None:
    source = make_source(table_pattern=pattern)
    for name, columns in (
        ("ml_worker_jobs", ("id", "result")),
        (f"{schema}.ml_worker_jobs", ("id", "result")),
        # Every tenant's inputs, beside the jobs.
        ("ml_worker_jobs_payloads", ("job_id", "data")),
        (f"{schema}.ml_worker_jobs_payloads", ("job_id", "data")),
    ):
        statements.clear()
        refused = await refusal(source, TableRef(name, columns=columns))
        assert refused.message == f"unknown table {name!r}"
        assert refused.details[0]["field"] == "data.table"
        assert statements == []
    if pattern == ".*":  # every other table is readable under this pattern: only the job table is kept out
        assert await rows(source, TableRef("people")) == [(7,)]


async def test_another_hidden_table_can_be_named(make_source: Any, statements: list[str]) -> None:
    source = make_source(table_pattern=".*", hidden_tables=("people",))
    assert (await refusal(source, TableRef("people"))).message == "unknown table 'people'"
    # A hidden table is a job store's: its payloads table is refused with it, before any SQL.
    statements.clear()
    assert (await refusal(source, TableRef("people_payloads"))).message == "unknown table 'people_payloads'"
    assert statements == []
    assert await rows(source, TableRef("ds_plain")) == [(1,), (2,)]


# ------------------------------------------------------------------------------------- tenants


@pytest.mark.parametrize(
    "ref",
    [
        TableRef("ds_people"),
        TableRef("ds_people", columns=("id", "age")),
        TableRef("ds_people", filters={"age": 30}),
        TableRef("ds_people", limit=1),
    ],
    ids=["bare", "columns", "other-filter", "limit"],
)
async def test_a_tenant_scoped_table_needs_a_tenant_filter(
    make_source: Any, statements: list[str], ref: TableRef
) -> None:
    error = await refusal(make_source(), ref)
    assert [d["field"] for d in error.details] == ["data.filters.tenantId"]
    assert "tenantId" in error.message and "ds_people" in error.message
    assert not [sql for sql in statements if "COPY" in sql.upper() or "count(" in sql]  # no row was read


async def test_with_the_filter_only_that_tenant_is_read(make_source: Any) -> None:
    source = make_source()
    assert await rows(source, TableRef("ds_people", filters={"tenantId": "t1"})) == [
        (1, "t1", 30),
        (2, "t1", 40),
    ]
    assert await rows(source, TableRef("ds_people", columns=("id",), filters={"tenantId": ["t2"]})) == [(3,)]
    assert await rows(source, TableRef("ds_plain")) == [(1,), (2,)]  # no tenant column: no filter needed


async def test_names_are_checked_before_the_tenant_rule(make_source: Any) -> None:
    error = await refusal(make_source(), TableRef("ds_people", columns=("id", "shoe_size")))
    assert [d["field"] for d in error.details] == ["data.columns[1]"]


async def test_the_tenant_rule_can_be_turned_off(make_source: Any) -> None:
    source = make_source(require_tenant_filter=False)
    assert len(await rows(source, TableRef("ds_people"))) == 3
