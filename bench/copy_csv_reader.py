"""The table source's previous reader, kept for `bench/read_table.py` to compare: rows streamed as
`COPY (SELECT ...) TO STDOUT (FORMAT csv)` over asyncpg and parsed by polars, with the same checks as
the adapter (catalogue lookup, bound filters and limit, row count, read-only repeatable-read
transaction, statement timeout). The worker now reads through ADBC
(`src/adapters/postgres/arrow_reader.py`); this file is the "today" of that comparison.

It was several times faster than asyncpg `fetch` or cursor batches, which build one Python object
per value.

- Memory. The COPY stream is cut into batches of about `batch_rows` whole records; each batch is
  parsed in a worker thread while the next one arrives, with at most two batches of CSV text held.
- Types. smallint/integer/bigint -> Int16/Int32/Int64; numeric, real, double -> Float64;
  boolean -> Boolean; date -> Date; timestamp -> Datetime(us); timestamptz -> Datetime(us, UTC);
  time -> Time; anything else (text, varchar, uuid, json, arrays, enums, intervals) -> String.
  Dates and timestamps outside polars' range or infinite (`infinity`, BC, year > 9999) become null.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import polars as pl

from adapters.postgres.arrow_reader import SESSION_SQL
from adapters.postgres.catalogue import (
    FLOAT_TYPES,
    CatalogueColumn,
    catalogue_query,
    catalogue_table,
    checked_request,
    selected_columns,
)
from adapters.postgres.read_plan import plan_read, too_large
from domain.data import TableRef

_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S%.f"
_TIME_FORMAT = "%H:%M:%S%.f"
_INTEGER_DTYPES: Mapping[str, pl.DataType] = {
    "smallint": pl.Int16(),
    "integer": pl.Int32(),
    "bigint": pl.Int64(),
}

Converter = Callable[[pl.Series], pl.Series]


async def copy_csv_load(
    dsn: str,
    table_name: str,
    *,
    max_rows: int,
    batch_rows: int = 100_000,
    statement_timeout_ms: int = 60_000,
    allowed_schemas: tuple[str, ...] = ("public",),
) -> pl.DataFrame:
    """What `SqlDatasetSource.load` did before ADBC, on one fresh asyncpg connection."""
    request = checked_request(TableRef(table_name), allowed_schemas)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            # The same text forms (ISO dates, UTC, shortest-exact floats) the parsers below expect.
            await conn.execute(SESSION_SQL, str(statement_timeout_ms))
            sql, params = catalogue_query(request, allowed_schemas)
            table = catalogue_table(await conn.fetch(sql, *params), request, allowed_schemas)
            plan = plan_read(table, selected_columns(table, request), request, max_rows)
            await conn.execute(plan.settings_sql, *plan.setting_values)
            if plan.count_first and await conn.fetchval(plan.count_sql) > max_rows:
                raise too_large(request, max_rows)
            decoding = csv_decoding(plan.columns)
            frame = await copy_frame(
                conn,
                plan.select_sql(decoding.select),
                decoding,
                batch_rows=batch_rows,
                timeout_s=statement_timeout_ms / 1000 + 5,
            )
    finally:
        await conn.close()
    if frame.height > max_rows:
        raise too_large(request, max_rows)
    return frame


@dataclass(frozen=True)
class CsvDecoding:
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


def csv_decoding(columns: Sequence[CatalogueColumn]) -> CsvDecoding:
    select: list[str] = []
    schema: dict[str, pl.DataType] = {}
    converters: list[tuple[int, Converter]] = []
    for index, column in enumerate(columns):
        expr, convert = column.sql, None
        dtype: pl.DataType = pl.String()
        kind = column.data_type
        if kind in _INTEGER_DTYPES:
            dtype = _INTEGER_DTYPES[kind]
        elif kind in FLOAT_TYPES:
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
    return CsvDecoding(select, schema, converters)


async def copy_frame(
    conn: Any, select_sql: str, decoding: CsvDecoding, *, batch_rows: int, timeout_s: float
) -> pl.DataFrame:
    """The rows of `select_sql` (whose columns are `decoding.select`) as one frame."""
    batches = _CsvBatches(decoding, batch_rows)
    try:
        # asyncpg wraps this as COPY (...) TO STDOUT (FORMAT csv); no args, so no client-side mogrify.
        await conn.copy_from_query(select_sql, output=batches.write, format="csv", timeout=timeout_s)
        frames = await batches.finish()
    except BaseException:
        batches.abandon()
        raise
    if not frames:
        return decoding.parse(b"")
    return pl.concat(frames, how="vertical", rechunk=False) if len(frames) > 1 else frames[0]


class _CsvBatches:
    """Receives the COPY stream, groups it into batches of about `batch_rows` rows and parses each
    in a thread while the next one arrives.

    PostgreSQL sends one CopyData message per row and asyncpg hands the sink whole messages, so every
    chunk ends on a record boundary (even inside quoted multi-line text) and batches are cut between
    chunks without scanning the bytes. Batch size in bytes is set from the first chunk's row length.
    At most one batch is parsed while the next is received; when both are busy the sink waits, which
    stops reading the socket, so memory stays bounded whatever the table size.
    """

    def __init__(self, decoding: CsvDecoding, batch_rows: int) -> None:
        self._decoding = decoding
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
        self._parsing.append(asyncio.ensure_future(asyncio.to_thread(self._decoding.parse, data)))
        while len(self._parsing) > 1:
            self.frames.append(await self._parsing.popleft())


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
