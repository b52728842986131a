"""What each PostgreSQL type family becomes in the frame, against the real server.

The expected values are what the COPY CSV reader produced (the table source's reader before ADBC):
the Arrow reader must give the same frame, edge values included (infinite and out-of-range dates and
timestamps, numerics beyond float range, real's short text form, types the driver would otherwise
hand over as opaque bytes). Skips like the other integration tests when PostgreSQL is absent.
"""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, time
from typing import Any

import adbc_driver_manager.dbapi
import asyncpg
import polars as pl
import pytest

from adapters.frames import PolarsDataset
from adapters.postgres.table_source import SqlDatasetSource
from domain.data import TableRef
from support.postgres import DSN, q, seeded_schema

pytestmark = pytest.mark.integration

N = None

# family -> column -> (SQL type, values as SQL literals one per row, expected polars dtype, expected
# values). Rows are ordered by `k`; every family's column has the same number of rows.
ROWS = 8
FAMILIES: dict[str, dict[str, tuple[str, list[str], Any, list[Any]]]] = {
    "integers": {
        "i2": ("smallint", ["-32768", "32767", "0", "NULL", "1", "2", "3", "4"], pl.Int16,
               [-32768, 32767, 0, N, 1, 2, 3, 4]),
        "i4": ("integer", ["-2147483648", "2147483647", "0", "NULL", "5", "6", "7", "8"], pl.Int32,
               [-2147483648, 2147483647, 0, N, 5, 6, 7, 8]),
        "i8": ("bigint", ["-9223372036854775808", "9223372036854775807", "0", "NULL", "1", "1", "1", "1"],
               pl.Int64, [-9223372036854775808, 9223372036854775807, 0, N, 1, 1, 1, 1]),
        "posint": ("{schema}.posint", ["7", "1", "NULL", "2", "3", "4", "5", "6"], pl.Int32,
                   [7, 1, N, 2, 3, 4, 5, 6]),
    },
    "floats": {
        "f8": ("double precision", ["'Infinity'", "'-Infinity'", "'NaN'", "1e-300", "-0.5", "NULL",
               "0.1", "1.7976931348623157e308"], pl.Float64,
               [math.inf, -math.inf, math.nan, 1e-300, -0.5, N, 0.1, 1.7976931348623157e308]),
        # real as its short text form (0.1, not 0.10000000149011612), as the CSV reader parsed it
        "r4": ("real", ["0.1", "'NaN'", "1e30", "'-Infinity'", "3.4028235e38", "1.17549435e-38", "NULL",
               "-2.5"], pl.Float64, [0.1, math.nan, 1e30, -math.inf, 3.4028235e38, 1.1754944e-38, N, -2.5]),
        # numeric: beyond float range is inf (a server-side ::float8 would fail), precision is cut
        "num": ("numeric", ["1e400", "'NaN'", "1.5e-300", "-1234.5", "123456789012345678901234567890",
                "NULL", "-1e400", "0"], pl.Float64,
                [math.inf, math.nan, 1.5e-300, -1234.5, 1.2345678901234568e29, N, -math.inf, 0.0]),
        "num_p": ("numeric(40, 20)", ["12345678901234567890.12345678901234567890",
                  "-0.00000000000000000001", "0", "NULL", "1.5", "2.25", "-3", "99"], pl.Float64,
                  [1.2345678901234567e19, -1e-20, 0.0, N, 1.5, 2.25, -3.0, 99.0]),
    },
    "booleans": {
        "b": ("boolean", ["true", "false", "NULL", "true", "false", "NULL", "true", "false"], pl.Boolean,
              [True, False, N, True, False, N, True, False]),
    },
    "dates": {
        # infinite dates are null; BC and far-future dates are kept (polars' Date holds them)
        "d": ("date", ["'infinity'", "'-infinity'", "'0001-01-01'", "'4713-01-01 BC'", "'9999-12-31'",
              "'10000-01-01'", "'5874897-12-31'", "'1969-12-31'"], pl.Date,
              [N, N, -719162, -2440550, 2932896, 2932897, 2145042905, -1]),
    },
    "timestamps": {
        # outside years 1..9999 (infinite, BC, 10000 and later) is null
        "ts": ("timestamp", ["'infinity'", "'-infinity'", "'0001-01-01 00:00:00'",
               "'0001-12-31 23:59:59.999999 BC'", "'9999-12-31 23:59:59.999999'", "'10000-01-01 00:00:00'",
               "'294276-12-31 23:59:59.999999'", "'1969-12-31 23:59:59.999999'"], pl.Datetime("us"),
               [N, N, datetime(1, 1, 1), N, datetime(9999, 12, 31, 23, 59, 59, 999999), N, N,
                datetime(1969, 12, 31, 23, 59, 59, 999999)]),
        # the same range, in UTC
        "tz": ("timestamptz", ["'infinity'", "'-infinity'", "'0001-01-01 00:00:00+00'",
               "'0001-12-31 23:59:59.999999+00 BC'", "'9999-12-31 23:59:59.999999+00'",
               "'10000-01-01 00:00:00+00'", "'9999-12-31 23:59:59.999999-05'", "'2000-01-01 00:00:00+14'"],
               pl.Datetime("us", "UTC"),
               [N, N, datetime(1, 1, 1, tzinfo=UTC), N,
                datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), N, N,
                datetime(1999, 12, 31, 10, tzinfo=UTC)]),
        "tm": ("time", ["'24:00:00'", "'00:00:00'", "'23:59:59.999999'", "NULL", "'12:30:00.5'", "NULL",
               "NULL", "NULL"], pl.Time,
               [N, time(0), time(23, 59, 59, 999999), N, time(12, 30, 0, 500000), N, N, N]),
    },
    "text": {
        "t": ("text", ["''", "'a,b\r\nc'", "NULL", "'Zoë 🚀'", "'\"q\"'", "'x'", "'y'", "'z'"], pl.String,
              ["", "a,b\r\nc", N, "Zoë 🚀", '"q"', "x", "y", "z"]),
        "vc": ("varchar(5)", ["'é'", "NULL", "''", "'abcde'", "'a'", "'b'", "'c'", "'d'"], pl.String,
               ["é", N, "", "abcde", "a", "b", "c", "d"]),
        # char(n) keeps its padding, as COPY writes it
        "c": ("char(4)", ["'ab'", "''", "NULL", "'abcd'", "'a'", "'b'", "'c'", "'d'"], pl.String,
              ["ab  ", "    ", N, "abcd", "a   ", "b   ", "c   ", "d   "]),
        "nm": ("name", ["'nm'", "''", "NULL", "'x'", "'y'", "'z'", "'w'", "'v'"], pl.String,
               ["nm", "", N, "x", "y", "z", "w", "v"]),
    },
    # Everything else is its output function's text, as COPY writes it.
    "other": {
        "u": ("uuid", ["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", *["NULL"] * 7], pl.String,
              ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", *[N] * 7]),
        "j": ("json", ["'{\"a\": [1, 2]}'", "'null'", *["NULL"] * 6], pl.String,
              ['{"a": [1, 2]}', "null", *[N] * 6]),
        "jb": ("jsonb", ["'{\"b\": 1, \"a\": null}'", "'[]'", *["NULL"] * 6], pl.String,
               ['{"a": null, "b": 1}', "[]", *[N] * 6]),
        "a": ("int[]", ["'{1,NULL,3}'", "'{}'", *["NULL"] * 6], pl.String, ["{1,NULL,3}", "{}", *[N] * 6]),
        "ta": ("text[]", ["'{\"x,y\",\"a\\\"b\",NULL}'", "'{}'", *["NULL"] * 6], pl.String,
               ['{"x,y","a\\"b",NULL}', "{}", *[N] * 6]),
        "tza": ("timestamptz[]", ["'{\"2024-01-02 03:04:05+02\"}'", *["NULL"] * 7], pl.String,
                ['{"2024-01-02 01:04:05+00"}', *[N] * 7]),
        "iv": ("interval", ["'1 day 02:03:04.5'", "'-1 mon'", *["NULL"] * 6], pl.String,
               ["1 day 02:03:04.5", "-1 mons", *[N] * 6]),
        # inet's ::text cast would add the mask to 10.0.0.1 and ::1: the output function does not
        "ip": ("inet", ["'10.0.0.1/8'", "'::1'", "'10.0.0.1'", *["NULL"] * 5], pl.String,
               ["10.0.0.1/8", "::1", "10.0.0.1", *[N] * 5]),
        "cidr": ("cidr", ["'10.1.0.0/16'", "'::/0'", *["NULL"] * 6], pl.String,
                 ["10.1.0.0/16", "::/0", *[N] * 6]),
        "m": ("money", ["12.5", "-3", *["NULL"] * 6], pl.String, ["$12.50", "-$3.00", *[N] * 6]),
        "e": ("{schema}.mood", ["'happy'", "'sad'", *["NULL"] * 6], pl.String, ["happy", "sad", *[N] * 6]),
        "by": ("bytea", ["'\\x00ff'", "'\\x'", *["NULL"] * 6], pl.String, ["\\x00ff", "\\x", *[N] * 6]),
        "ttz": ("timetz", ["'01:02:03+02'", *["NULL"] * 7], pl.String, ["01:02:03+02", *[N] * 7]),
        "ch": ('"char"', ["'x'", "' '", *["NULL"] * 6], pl.String, ["x", " ", *[N] * 6]),
    },
}  # fmt: skip


async def _seed(schema: str) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        s = q(schema)
        columns = [(name, sql_type.format(schema=s), values) for family in FAMILIES.values()
                   for name, (sql_type, values, _, _) in family.items()]  # fmt: skip
        rows = ",\n".join(
            "(" + ", ".join([str(i), *(values[i] for _, _, values in columns)]) + ")" for i in range(ROWS)
        )
        await conn.execute(f"""
            CREATE SCHEMA {s};
            CREATE TYPE {s}.mood AS ENUM ('sad', 'happy');
            CREATE DOMAIN {s}.posint AS integer CHECK (VALUE > 0);
            CREATE TABLE {s}.ds_types (k int, {", ".join(f"{q(n)} {t}" for n, t, _ in columns)});
            SET TimeZone = 'Europe/Paris';
            INSERT INTO {s}.ds_types VALUES {rows};
        """)  # fmt: skip
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def types_schema() -> Iterator[str]:
    yield from seeded_schema("mlw_types", _seed)


@pytest.fixture
async def source(types_schema: str) -> AsyncIterator[SqlDatasetSource]:
    source = SqlDatasetSource(DSN, allowed_schemas=(types_schema,), connect_timeout_s=3)
    yield source
    await source.close()


def _comparable(value: Any) -> Any:
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_each_type_family_maps_as_the_csv_reader_did(source: SqlDatasetSource, family: str) -> None:
    columns = FAMILIES[family]
    dataset = await source.load(TableRef("ds_types", columns=("k", *columns)), max_rows=100)
    assert isinstance(dataset, PolarsDataset)
    frame = dataset.frame.sort("k")
    assert frame.columns == ["k", *columns]
    for name, (_, _, dtype, expected) in columns.items():
        series = frame[name]
        assert series.dtype == dtype, name
        if dtype == pl.Date:
            # Days since 1970: Python's date cannot hold 4713 BC, polars' Date can.
            series = series.cast(pl.Int32)
        assert [_comparable(v) for v in series.to_list()] == [_comparable(v) for v in expected], name


async def test_an_empty_read_keeps_every_family_typed(source: SqlDatasetSource) -> None:
    frame = (await source.load(TableRef("ds_types", filters={"k": -1}), max_rows=100)).frame  # type: ignore[attr-defined]
    assert frame.height == 0
    expected = {name: spec[2] for family in FAMILIES.values() for name, spec in family.items()}
    assert {name: dtype for name, dtype in frame.schema.items() if name != "k"} == expected


async def test_the_read_runs_off_the_event_loop(
    source: SqlDatasetSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ADBC is synchronous: every statement must run in the source's threads, never on the loop's.
    threads: list[str] = []
    original = adbc_driver_manager.dbapi.Cursor.execute

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(adbc_driver_manager.dbapi.Cursor, "execute", spy)
    await source.load(TableRef("ds_types", columns=("k", "t")), max_rows=100)
    assert threads
    assert threading.current_thread().name not in threads
    assert all(name.startswith("table-read") for name in threads)
