"""`SqlDatasetSource`: the `table` form of `data`, read from the platform's PostgreSQL into polars.

How a request becomes a read, and why:

- Names. The table (optionally `schema.table`, only for `allowed_schemas`), the columns and the filter
  keys are looked up in `information_schema` with the names as bound parameters, compared exactly
  (case-sensitive) as text. Nothing the request contains is ever spliced into SQL: the statement is
  built from the catalogue's own names, each quoted as an identifier. Names longer than PostgreSQL's
  63-byte limit or containing NUL cannot exist and are refused before any SQL runs.
- Values. The rows are streamed with `COPY (SELECT ...) TO STDOUT (FORMAT csv)` and parsed by polars:
  measured by `bench/read_table.py`, it is several times faster than asyncpg `fetch` or cursor
  batches, which build one Python object per value. COPY takes no bind parameters, so the filter
  values and the limit are bound to `set_config()` (transaction-local settings) in a separate
  statement and the COPY reads them with `current_setting()`, cast to the column's catalogue type
  inside an uncorrelated sub-select (evaluated once, so indexes still apply).
- Safety. One `REPEATABLE READ READ ONLY` transaction per load, with a local `statement_timeout`;
  the row count check and the COPY see the same snapshot.
- Size. With no `limit` (or a `limit` above `max_rows`), more than `max_rows` matching rows is
  PAYLOAD_TOO_LARGE with a message suggesting a `limit`. We refuse rather than silently sample,
  because a truncated table would change a model or a segmentation without the caller knowing. The
  matching rows are counted first (up to `max_rows + 1`) so the refusal comes before any row moves,
  unless the planner's statistics put the whole table under half of `max_rows`; in every case the
  COPY itself is limited to `max_rows + 1` rows and refused past `max_rows`, so stale statistics
  cost time, never correctness. A `limit` takes the first rows the server returns (no ORDER BY:
  not a random sample).
- Memory. The COPY stream is cut into batches of about `batch_rows` whole records; each batch is
  parsed in a worker thread while the next one arrives, with at most two batches of CSV text held.
- Types. smallint/integer/bigint -> Int16/Int32/Int64; numeric, real, double -> Float64;
  boolean -> Boolean; date -> Date; timestamp -> Datetime(us); timestamptz -> Datetime(us, UTC);
  time -> Time; anything else (text, varchar, uuid, json, arrays, enums, intervals) -> String.
  Dates and timestamps outside polars' range or infinite (`infinity`, BC, year > 9999) become null.
- Failures. Connect errors, lost connections and the statement timeout are DEPENDENCY_UNAVAILABLE;
  the pool pings connections before use and drops any connection that failed mid-protocol, so the
  source recovers by itself when the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import polars as pl
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from adapters.frames import FrameDataset, PolarsDataset
from application.errors import DependencyUnavailable, PayloadTooLarge
from application.ports import DatasetSource
from domain.data import DataSpec, TableRef
from domain.errors import ValidationFailed, WorkerError, field_error

# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes: a longer name cannot be in the catalogue.
_MAX_NAME_BYTES = 63
# Names echoed in error messages are cut, so a 10,000-character name does not come back whole.
_SHOWN_NAME_CHARS = 80
# SQLSTATE classes that mean "the server cannot serve us" rather than "this request is wrong":
# connection exception, invalid authorization, insufficient resources, operator intervention
# (shutdown, cannot connect now), unknown database.
_UNAVAILABLE_CLASSES = ("08", "28", "53", "57", "3D")
_QUERY_CANCELED = "57014"
# Below this fraction of max_rows, the table's row estimate is trusted enough to skip the pre-count.
_TRUST_ESTIMATE_BELOW = 0.5
_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S%.f"
_TIME_FORMAT = "%H:%M:%S%.f"

_INTEGER_DTYPES: Mapping[str, pl.DataType] = {
    "smallint": pl.Int16(),
    "integer": pl.Int32(),
    "bigint": pl.Int64(),
}
_FLOAT_TYPES = frozenset({"numeric", "real", "double precision"})

_CATALOGUE_SQL = """
SELECT t.table_schema::text AS table_schema,
       t.table_name::text AS table_name,
       c.column_name::text AS column_name,
       c.data_type::text AS data_type,
       c.udt_schema::text AS udt_schema,
       c.udt_name::text AS udt_name,
       (SELECT k.reltuples FROM pg_catalog.pg_class AS k
          JOIN pg_catalog.pg_namespace AS n ON n.oid = k.relnamespace
         WHERE n.nspname = t.table_schema::text AND k.relname = t.table_name::text) AS estimated_rows
FROM information_schema.tables AS t
LEFT JOIN information_schema.columns AS c
  ON c.table_schema = t.table_schema AND c.table_name = t.table_name
WHERE t.table_schema::text = ANY($1::text[]) AND t.table_name::text = $2::text
ORDER BY array_position($1::text[], t.table_schema::text), c.ordinal_position
"""


def asyncpg_engine_target(url: str) -> tuple[URL, dict[str, Any]]:
    """Turn a DATABASE_URL as the platform sets it into SQLAlchemy's asyncpg URL and connect args.

    `postgresql://` and `postgres://` become `postgresql+asyncpg://`. libpq's `sslmode` becomes
    asyncpg's `ssl`, `application_name` a server setting and `pgbouncer=true` (Prisma) disables
    prepared-statement caches; `host`/`port` are kept; other parameters (Prisma's `schema`,
    `connection_limit`...) are dropped because asyncpg would reject them as unknown keywords.
    """
    parsed = make_url(url)
    if parsed.drivername not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ValueError(f"the SQL data source needs a postgresql:// URL, not {parsed.drivername}://")
    connect_args: dict[str, Any] = {}
    kept: dict[str, str] = {}
    for key, raw in parsed.query.items():
        value = raw if isinstance(raw, str) else raw[-1]
        if key == "sslmode":
            connect_args["ssl"] = value
        elif key == "application_name":
            connect_args["server_settings"] = {"application_name": value}
        elif key == "pgbouncer":
            if value.lower() in ("1", "true", "yes"):
                # A transaction-mode pooler cannot keep named prepared statements between transactions.
                connect_args["statement_cache_size"] = 0
                kept["prepared_statement_cache_size"] = "0"
        elif key in ("host", "port"):
            kept[key] = value
        # Anything else is dropped: asyncpg would refuse the worker's start over an unknown keyword.
    return parsed.set(drivername="postgresql+asyncpg", query=kept), connect_args


def schema_from_url(url: str) -> str | None:
    """The `schema` parameter Prisma-style URLs carry (`...?schema=app`), for `allowed_schemas`."""
    value = make_url(url).query.get("schema")
    if value is None:
        return None
    return value if isinstance(value, str) else value[-1]


def quote_identifier(name: str) -> str:
    """An identifier as PostgreSQL's quote_ident writes it (always quoted): only for catalogue names."""
    return '"' + name.replace('"', '""') + '"'


def _shown(name: str) -> str:
    return repr(name if len(name) <= _SHOWN_NAME_CHARS else name[:_SHOWN_NAME_CHARS] + "...")


@dataclass(frozen=True)
class _Column:
    name: str
    data_type: str
    udt_schema: str
    udt_name: str

    @property
    def sql(self) -> str:
        return quote_identifier(self.name)

    @property
    def sql_type(self) -> str:
        # The column's own type (for a domain, its base type), so a cast behaves like a comparison in SQL.
        return f"{quote_identifier(self.udt_schema)}.{quote_identifier(self.udt_name)}"


@dataclass(frozen=True)
class _Table:
    schema: str
    name: str
    columns: Mapping[str, _Column]
    # The planner's estimate (pg_class.reltuples): -1 or 0 when unknown, e.g. never analysed or a view.
    estimated_rows: float

    @property
    def sql(self) -> str:
        return f"{quote_identifier(self.schema)}.{quote_identifier(self.name)}"


Converter = Callable[[pl.Series], pl.Series]


@dataclass(frozen=True)
class _ReadPlan:
    """What the COPY selects for each column, how polars reads it, and what converts it after."""

    select: list[str]
    read_schema: dict[str, pl.DataType]
    converters: list[tuple[int, Converter]]

    def parse(self, data: bytes) -> pl.DataFrame:
        frame = pl.read_csv(
            data,
            has_header=False,
            schema=self.read_schema,
            separator=",",
            quote_char='"',
            raise_if_empty=False,
            try_parse_dates=False,
        )
        for index, convert in self.converters:
            frame.replace_column(index, convert(frame.to_series(index)))
        return frame


def _is_true(series: pl.Series) -> pl.Series:
    return series == "t"


def _to_datetime(series: pl.Series) -> pl.Series:
    return series.str.to_datetime(_TIMESTAMP_FORMAT, time_unit="us", strict=False)


def _to_utc_datetime(series: pl.Series) -> pl.Series:
    return _to_datetime(series).dt.replace_time_zone("UTC")


def _to_date(series: pl.Series) -> pl.Series:
    return series.cast(pl.Date)


def _to_time(series: pl.Series) -> pl.Series:
    return series.str.to_time(_TIME_FORMAT, strict=False)


def _read_plan(columns: Sequence[_Column]) -> _ReadPlan:
    select: list[str] = []
    schema: dict[str, pl.DataType] = {}
    converters: list[tuple[int, Converter]] = []
    for index, column in enumerate(columns):
        expr, convert = column.sql, None
        dtype: pl.DataType = pl.String()
        kind = column.data_type
        if kind in _INTEGER_DTYPES:
            dtype = _INTEGER_DTYPES[kind]
        elif kind in _FLOAT_TYPES:
            dtype = pl.Float64()
        elif kind == "boolean":
            convert = _is_true
        elif kind == "date":
            # Days since 1970 parse as plain integers, far cheaper than date text; infinite dates -> null.
            expr = f"CASE WHEN isfinite({column.sql}) THEN {column.sql} - DATE '1970-01-01' END"
            dtype, convert = pl.Int32(), _to_date
        elif kind == "timestamp without time zone":
            convert = _to_datetime
        elif kind == "timestamp with time zone":
            # Written as UTC wall-clock time: no offset to parse, whatever the server's TimeZone.
            expr = f"({column.sql} AT TIME ZONE 'UTC')"
            convert = _to_utc_datetime
        elif kind == "time without time zone":
            convert = _to_time
        select.append(expr)
        schema[column.name] = dtype
        if convert is not None:
            converters.append((index, convert))
    return _ReadPlan(select, schema, converters)


class _CsvBatches:
    """Receives the COPY stream, groups it into batches of about `batch_rows` rows and parses each
    in a thread while the next one arrives.

    PostgreSQL sends one CopyData message per row and asyncpg hands the sink whole messages, so every
    chunk ends on a record boundary (even inside quoted multi-line text) and batches are cut between
    chunks without scanning the bytes. Batch size in bytes is set from the first chunk's row length.
    At most one batch is parsed while the next is received; when both are busy the sink waits, which
    stops reading the socket, so memory stays bounded whatever the table size.
    """

    def __init__(self, plan: _ReadPlan, batch_rows: int) -> None:
        self._plan = plan
        self._batch_rows = batch_rows
        self._batch_bytes = 0
        self._chunks: list[bytes] = []
        self._size = 0
        self._parsing: deque[asyncio.Future[pl.DataFrame]] = deque()
        self.frames: list[pl.DataFrame] = []

    async def write(self, chunk: bytes) -> None:
        if not self._batch_bytes:
            # Quoted newlines make this an estimate; only the batch size depends on it.
            self._batch_bytes = max(1, self._batch_rows * len(chunk) // max(1, chunk.count(b"\n")))
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size >= self._batch_bytes:
            await self._submit()

    async def finish(self) -> list[pl.DataFrame]:
        if self._chunks:
            await self._submit()
        while self._parsing:
            self.frames.append(await self._parsing.popleft())
        return self.frames

    def abandon(self) -> None:
        for future in self._parsing:
            future.cancel()
        self._parsing.clear()

    async def _submit(self) -> None:
        data = b"".join(self._chunks)
        self._chunks, self._size = [], 0
        self._parsing.append(asyncio.ensure_future(asyncio.to_thread(self._plan.parse, data)))
        while len(self._parsing) > 1:
            self.frames.append(await self._parsing.popleft())


@dataclass(frozen=True)
class _Request:
    schema: str | None
    table: str
    columns: tuple[str, ...] | None
    filters: Mapping[str, Any]
    limit: int | None


class SqlDatasetSource(DatasetSource[pl.DataFrame]):
    """Reads a `TableRef` from PostgreSQL (see the module docstring for the rules and the why)."""

    def __init__(
        self,
        url: str,
        *,
        allowed_schemas: tuple[str, ...] = ("public",),
        statement_timeout_ms: int = 60000,
        batch_rows: int = 100_000,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if not allowed_schemas:
            raise ValueError("allowed_schemas must name at least one schema")
        if statement_timeout_ms < 1 or batch_rows < 1 or connect_timeout_s <= 0:
            raise ValueError("statement_timeout_ms, batch_rows and connect_timeout_s must be positive")
        self._allowed_schemas = tuple(allowed_schemas)
        self._statement_timeout_ms = int(statement_timeout_ms)
        self._batch_rows = int(batch_rows)
        self._connect_timeout_s = float(connect_timeout_s)
        engine_url, connect_args = asyncpg_engine_target(url)
        server_settings = {"application_name": "ml-worker", **connect_args.pop("server_settings", {})}
        self._engine: AsyncEngine = create_async_engine(
            engine_url,
            connect_args={
                "timeout": self._connect_timeout_s,
                # Client-side guard for a network that goes silent: the server's timeout plus slack.
                "command_timeout": self._statement_timeout_ms / 1000 + self._connect_timeout_s,
                "server_settings": server_settings,
                **connect_args,
            },
            # A pooled connection is pinged before use, so a database restart costs one reconnect.
            pool_pre_ping=True,
            pool_size=4,
            max_overflow=4,
            pool_timeout=self._connect_timeout_s,
        )

    async def load(self, spec: DataSpec, *, max_rows: int) -> FrameDataset:
        if not isinstance(spec, TableRef):
            raise ValidationFailed(
                "the SQL data source reads only the `table` form of data",
                [field_error("data", f"expected a table reference, got {type(spec).__name__}")],
            )
        if max_rows < 1:
            raise ValueError("max_rows must be positive")
        request = self._checked_request(spec)
        try:
            async with (
                self._connection() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                frame = await self._read(conn, request, max_rows)
        except WorkerError:
            raise
        except Exception as exc:
            translated = self._translate(exc, request)
            if translated is None:
                raise
            raise translated from exc
        return PolarsDataset(frame)

    async def check(self) -> str | None:
        try:
            async with self._connection() as conn:
                await conn.fetchval("SELECT 1", timeout=self._connect_timeout_s)
        except Exception as exc:
            return f"PostgreSQL unavailable: {_reason(exc)}"
        return None

    async def close(self) -> None:
        await self._engine.dispose()

    # --- request checks that need no database -------------------------------------------------

    def _checked_request(self, spec: TableRef) -> _Request:
        table = _checked_name(spec.table, "data.table", "table")
        schema: str | None = None
        if "." in table:
            schema, table = table.split(".", 1)
            if schema not in self._allowed_schemas:
                raise ValidationFailed(
                    f"schema {_shown(schema)} is not readable; allowed: {', '.join(self._allowed_schemas)}",
                    [field_error("data.table", f"schema {_shown(schema)} is not allowed")],
                )
            if not table:
                raise ValidationFailed("the table name is empty", [field_error("data.table", "empty name")])
        columns: tuple[str, ...] | None = None
        if spec.columns is not None:
            if len(spec.columns) == 0:
                raise ValidationFailed(
                    "columns must name at least one column (omit it for all columns)",
                    [field_error("data.columns", "empty list")],
                )
            columns = tuple(
                _checked_name(name, f"data.columns[{i}]", "column") for i, name in enumerate(spec.columns)
            )
            duplicates = sorted({name for name in columns if columns.count(name) > 1})
            if duplicates:
                raise ValidationFailed(
                    f"column {_shown(duplicates[0])} is listed more than once",
                    [field_error("data.columns", f"duplicate column {_shown(name)}") for name in duplicates],
                )
        for key in spec.filters:
            _checked_name(key, f"data.filters.{key[:_SHOWN_NAME_CHARS]}", "filter column")
        limit = spec.limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValidationFailed(
                "limit must be a positive integer", [field_error("data.limit", "must be a positive integer")]
            )
        return _Request(schema, table, columns, dict(spec.filters), limit)

    # --- the read ---------------------------------------------------------------------------------

    async def _read(self, conn: Any, request: _Request, max_rows: int) -> pl.DataFrame:
        await conn.execute(
            "SELECT set_config('statement_timeout', $1, true), set_config('DateStyle', 'ISO, YMD', true),"
            " set_config('TimeZone', 'UTC', true), set_config('extra_float_digits', '1', true)",
            str(self._statement_timeout_ms),
        )
        table = await self._resolve(conn, request)
        columns = self._selected_columns(table, request)
        conditions, settings = _conditions(table, request.filters)
        # Up to max_rows + 1 rows are counted or read: one more than allowed is enough to refuse.
        asked = request.limit
        cap = asked if asked is not None and asked <= max_rows else max_rows + 1
        settings.append(("ml_worker.limit", str(cap)))
        # Setting names are ours ('ml_worker.pN'); the values, all from the request, are bound.
        assignments = ", ".join(
            f"set_config('{name}', ${i}, true)" for i, (name, _) in enumerate(settings, 1)
        )
        await conn.execute(f"SELECT {assignments}", *(value for _, value in settings))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        limited = f"FROM {table.sql}{where} LIMIT (SELECT current_setting('ml_worker.limit')::bigint)"
        # Counting first refuses a too-large read before any row moves, but costs a scan; it is
        # skipped when the statistics say the whole table is well under max_rows. Either way the
        # COPY's limit of max_rows + 1 and the check after it keep the rule exact.
        if cap > max_rows and not 0 < table.estimated_rows < _TRUST_ESTIMATE_BELOW * max_rows:
            matching = await conn.fetchval(f"SELECT count(*) FROM (SELECT 1 {limited}) AS limited")
            if matching > max_rows:
                raise _too_large(request, max_rows)
        plan = _read_plan(columns)
        batches = _CsvBatches(plan, self._batch_rows)
        try:
            # asyncpg wraps this as COPY (...) TO STDOUT (FORMAT csv); no args, so no client-side mogrify.
            await conn.copy_from_query(
                f"SELECT {', '.join(plan.select)} {limited}",
                output=batches.write,
                format="csv",
                timeout=self._statement_timeout_ms / 1000 + self._connect_timeout_s,
            )
            frames = await batches.finish()
        except BaseException:
            batches.abandon()
            raise
        if not frames:
            return plan.parse(b"")
        frame = pl.concat(frames, how="vertical", rechunk=False) if len(frames) > 1 else frames[0]
        if frame.height > max_rows:  # the count was skipped on stale statistics: refuse all the same
            raise _too_large(request, max_rows)
        return frame

    async def _resolve(self, conn: Any, request: _Request) -> _Table:
        schemas = [request.schema] if request.schema is not None else list(self._allowed_schemas)
        rows = await conn.fetch(_CATALOGUE_SQL, schemas, request.table)
        if not rows:
            shown = request.table if request.schema is None else f"{request.schema}.{request.table}"
            where = request.schema or " or ".join(self._allowed_schemas)
            raise ValidationFailed(
                f"unknown table {_shown(shown)}",
                [field_error("data.table", f"no table {_shown(shown)} in schema {where}")],
            )
        schema = rows[0]["table_schema"]
        columns = {
            row["column_name"]: _Column(
                row["column_name"], row["data_type"], row["udt_schema"], row["udt_name"]
            )
            for row in rows
            if row["table_schema"] == schema and row["column_name"] is not None
        }
        estimate = rows[0]["estimated_rows"]
        return _Table(schema, rows[0]["table_name"], columns, -1.0 if estimate is None else float(estimate))

    def _selected_columns(self, table: _Table, request: _Request) -> list[_Column]:
        unknown = [
            field_error(f"data.columns[{i}]", f"unknown column {_shown(name)} in table {_shown(table.name)}")
            for i, name in enumerate(request.columns or ())
            if name not in table.columns
        ]
        unknown += [
            field_error(
                f"data.filters.{name[:_SHOWN_NAME_CHARS]}",
                f"unknown column {_shown(name)} in table {_shown(table.name)}",
            )
            for name in request.filters
            if name not in table.columns
        ]
        if unknown:
            raise ValidationFailed(unknown[0]["message"], unknown)
        if request.columns is None:
            return list(table.columns.values())
        return [table.columns[name] for name in request.columns]

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """The asyncpg connection of a pooled SQLAlchemy connection (COPY needs the driver's API)."""
        sa_conn = self._engine.connect()
        try:
            # Checkout may ping a dead pooled connection and then reconnect: two connect budgets.
            async with asyncio.timeout(2 * self._connect_timeout_s):
                await sa_conn.start()
                raw = await sa_conn.get_raw_connection()
        except BaseException:
            await _quietly(sa_conn.close())
            raise
        try:
            yield raw.driver_connection
        except BaseException as exc:
            # A server-side error (bad value, timeout) leaves the connection usable; anything else
            # (lost socket, COPY cut short, cancellation) may leave it mid-protocol: never reuse it.
            if not isinstance(exc, WorkerError | asyncpg.PostgresError) or _unavailable(exc):
                await _quietly(sa_conn.invalidate())
            raise
        finally:
            await _quietly(sa_conn.close())

    def _translate(self, exc: BaseException, request: _Request) -> WorkerError | None:
        """The domain error for a driver error, or None for a genuine bug (left to become a 500)."""
        state = _sqlstate(exc)
        if state == _QUERY_CANCELED:
            return DependencyUnavailable(
                f"the database did not answer within the statement timeout ({self._statement_timeout_ms} ms)"
            )
        if _unavailable(exc):
            return DependencyUnavailable(f"PostgreSQL is unavailable: {_reason(exc)}")
        if state.startswith("22"):
            # Mostly a filter value its column's type refuses; without filters, a value the table
            # (a view) cannot produce.
            field = "data.filters" if request.filters else "data.table"
            return ValidationFailed(
                f"the database refused a value: {_reason(exc)}", [field_error(field, _reason(exc))]
            )
        if state == "42883":
            return ValidationFailed(
                f"a filter column cannot be compared for equality: {_reason(exc)}",
                [field_error("data.filters", _reason(exc))],
            )
        if state in ("42501", "25006", "42P01", "42703"):
            # No SELECT privilege, a view that tries to write, or a table dropped under our feet.
            return ValidationFailed(
                f"the table cannot be read: {_reason(exc)}", [field_error("data.table", _reason(exc))]
            )
        return None


def _checked_name(name: object, field: str, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationFailed(
            f"the {what} name must be a non-empty string", [field_error(field, "empty name")]
        )
    if "\x00" in name or len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        raise ValidationFailed(
            f"unknown {what} {_shown(name)}",
            [field_error(field, f"no such {what}: PostgreSQL names are at most 63 bytes, without NUL")],
        )
    return name


def _filter_text(column: _Column, value: object, field: str) -> str:
    """The text form of one filter value, cast to the column's type by the server."""
    kind = column.data_type
    numeric = kind in _INTEGER_DTYPES or kind in _FLOAT_TYPES

    def wrong(expected: str) -> ValidationFailed:
        message = f"filter on {_shown(column.name)} ({kind}) needs {expected}, got {type(value).__name__}"
        return ValidationFailed(message, [field_error(field, message)])

    if isinstance(value, bool):
        if numeric:
            raise wrong("a number")
        return "true" if value else "false"
    if isinstance(value, int):
        if kind == "boolean":
            raise wrong("true or false")
        return str(value)
    if isinstance(value, float):
        if kind == "boolean":
            raise wrong("true or false")
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if kind in _INTEGER_DTYPES:
            if not value.is_integer():
                raise wrong("an integer")
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        if "\x00" in value:
            message = f"filter on {_shown(column.name)} contains a NUL character"
            raise ValidationFailed(message, [field_error(field, message)])
        return value
    raise wrong("a string, number, boolean, null or a list of them")


def _conditions(table: _Table, filters: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """WHERE terms built from catalogue names only, and the (setting, value) pairs they read."""
    conditions: list[str] = []
    settings: list[tuple[str, str]] = []
    for key, value in filters.items():
        column = table.columns[key]
        field = f"data.filters.{key[:_SHOWN_NAME_CHARS]}"
        if value is None:
            conditions.append(f"{column.sql} IS NULL")
            continue
        setting = f"ml_worker.p{len(settings)}"
        if isinstance(value, list | tuple):
            present = [_filter_text(column, item, field) for item in value if item is not None]
            terms = []
            if present:
                # The list travels as one JSON array value; each element is cast like a single value.
                settings.append((setting, json.dumps(present)))
                terms.append(
                    f"{column.sql} IN (SELECT e.v::{column.sql_type}"
                    f" FROM jsonb_array_elements_text(current_setting('{setting}')::jsonb) AS e(v))"
                )
            if any(item is None for item in value):
                terms.append(f"{column.sql} IS NULL")
            conditions.append(f"({' OR '.join(terms)})" if terms else "false")
            continue
        settings.append((setting, _filter_text(column, value, field)))
        conditions.append(f"{column.sql} = (SELECT current_setting('{setting}')::{column.sql_type})")
    return conditions, settings


def _too_large(request: _Request, max_rows: int) -> PayloadTooLarge:
    asked = "" if request.limit is None else f" (limit {request.limit} is above that)"
    message = (
        f"table {_shown(request.table)} has more than {max_rows} matching rows{asked}; "
        f"pass a limit of at most {max_rows}, or narrower filters"
    )
    return PayloadTooLarge(message, [field_error("data.limit", f"at most {max_rows} rows can be read")])


def _sqlstate(exc: BaseException) -> str:
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return ""


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError | sa_exc.OperationalError)
    ):
        return True
    state = _sqlstate(exc)
    return state.startswith(_UNAVAILABLE_CLASSES) and state != _QUERY_CANCELED


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    cause = orig if orig is not None else exc
    said = str(cause).strip()
    # Timeouts and refused connections may carry no message; the exception's name is the reason then.
    return (said.splitlines()[0] if said else type(cause).__name__)[:200]


async def _quietly(closing: Any) -> None:
    # Cleanup after a failure must not replace the failure being reported.
    with contextlib.suppress(Exception):
        await closing
