"""The Arrow reader: rows streamed by the ADBC PostgreSQL driver (binary COPY decoded into Arrow
record batches) and turned into polars, batch by batch.

Measured by `bench/read_table.py` against the COPY CSV reader it replaced (kept in
`bench/copy_csv_reader.py`), 1M x 20 on the shared 2-core machine: the server writes binary COPY
with 15-25% less CPU than CSV, the client decodes with about 5% less, wall times are equal within
the noise. The decoding is one C++ loop on one core; the CSV parse ran in polars' threads.

Types: the frame is the one the CSV reader gave, value for value (tests/integration pin it per type
family against the real server). Every column is selected through an explicit expression, so the
driver only ever sees built-in types (never a domain, an enum or an extension type it would hand
over as opaque bytes):

| PostgreSQL | selected as | polars |
|---|---|---|
| smallint, integer, bigint (and domains over them) | `::int2`, `::int4`, `::int8` | Int16, Int32, Int64 |
| double precision | `::float8` | Float64 |
| numeric, real | `::text`, cast by polars | Float64 (`NaN`, `Infinity` kept; beyond float range -> inf) |
| boolean | `::bool` | Boolean |
| date | `::date`, infinite -> NULL | Date (BC and far-future dates kept) |
| timestamp | `::timestamp`, outside years 1..9999 or infinite -> NULL | Datetime(us) |
| timestamptz | `::timestamptz`, same range in UTC | Datetime(us, UTC) |
| time | `::time`, `24:00:00` -> NULL | Time |
| text, varchar, name / char(n) | `::text` / `::bpchar` (padding kept) | String |
| anything else (uuid, json, arrays, enums, intervals, inet, money...) | its output function | String |

Numeric and real travel as text because their text form is what the CSV reader parsed: real as
shortest-exact text (0.1, not 0.10000000149011612) and numeric beyond float range as inf, where a
server-side `::float8` would fail. The session settings below fix those text forms whatever the
server's defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from adapters.postgres.catalogue import CatalogueColumn

# The text forms the "anything else" columns and the filters are read and written in: ISO dates,
# UTC, and floats written shortest-exact. Set per transaction, with the read's statement timeout.
SESSION_SQL = (
    "SELECT set_config('statement_timeout', $1, true), set_config('DateStyle', 'ISO, YMD', true),"
    " set_config('TimeZone', 'UTC', true), set_config('extra_float_digits', '1', true)"
)

_NATIVE_CASTS = {
    "smallint": "int2",
    "integer": "int4",
    "bigint": "int8",
    "double precision": "float8",
    "boolean": "bool",
    "text": "text",
    "character varying": "text",
    "name": "text",
    "character": "bpchar",
}
_FLOAT_TEXT = frozenset({"numeric", "real"})
# The range polars' Datetime took from the CSV text (years 1 to 9999): the rest was null.
_TIMESTAMP_RANGE = "'0001-01-01 00:00:00'::timestamp AND {0} < '10000-01-01 00:00:00'::timestamp"
_TIMESTAMPTZ_RANGE = "'0001-01-01 00:00:00+00'::timestamptz AND {0} < '10000-01-01 00:00:00+00'::timestamptz"


@dataclass(frozen=True)
class ArrowDecoding:
    """What the read selects for each column, and which columns polars casts from text after."""

    select: list[str]
    names: list[str]
    float_text: list[str]

    def frame(self, batches: Iterable[Any], schema: Any) -> pl.DataFrame:
        """One frame from Arrow record batches (`schema` types the frame when there are none)."""
        frames = [self._convert(pl.from_arrow(batch)) for batch in batches]  # type: ignore[arg-type]
        if not frames:
            frames = [self._convert(pl.from_arrow(schema.empty_table()))]  # type: ignore[arg-type]
        return pl.concat(frames, how="vertical", rechunk=False) if len(frames) > 1 else frames[0]

    def _convert(self, frame: pl.DataFrame) -> pl.DataFrame:
        if self.float_text:
            frame = frame.with_columns(pl.col(self.float_text).cast(pl.Float64))
        return frame


def arrow_decoding(columns: Sequence[CatalogueColumn]) -> ArrowDecoding:
    select: list[str] = []
    float_text: list[str] = []
    for column in columns:
        select.append(f"{_expression(column)} AS {column.sql}")
        if column.data_type in _FLOAT_TEXT:
            float_text.append(column.name)
    return ArrowDecoding(select, [column.name for column in columns], float_text)


def _expression(column: CatalogueColumn) -> str:
    c, kind = column.sql, column.data_type
    if kind in _NATIVE_CASTS:
        return f"{c}::pg_catalog.{_NATIVE_CASTS[kind]}"
    if kind in _FLOAT_TEXT:
        return f"{c}::pg_catalog.text"
    if kind == "date":
        return f"CASE WHEN isfinite({c}) THEN {c}::pg_catalog.date END"
    if kind == "timestamp without time zone":
        return f"CASE WHEN {c} >= {_TIMESTAMP_RANGE.format(c)} THEN {c}::pg_catalog.timestamp END"
    if kind == "timestamp with time zone":
        return f"CASE WHEN {c} >= {_TIMESTAMPTZ_RANGE.format(c)} THEN {c}::pg_catalog.timestamptz END"
    if kind == "time without time zone":
        return f"CASE WHEN {c} < '24:00:00'::time THEN {c}::pg_catalog.time END"
    # The type's output function, as COPY writes it: `::text` is not that for every type (inet's
    # cast adds the mask, bpchar's drops the padding), format's %s is.
    return f"CASE WHEN {c} IS NOT NULL THEN format('%s', {c}) END"
