"""Benchmark: 1,000,000 rows x 20 (or 10) columns from PostgreSQL into a polars frame, method by method.

Each run of each method is a fresh subprocess (so peak RSS is its own); runs are interleaved (one of
each method, then the next round) so a neighbour's burst of load hits every method alike, and the
table shows medians. The default is the comparison the issue asks for, in one command:

- `adapter`        SqlDatasetSource.load, the worker's read: catalogue lookup, row count, then ADBC's
                   binary COPY into Arrow batches, each turned into polars
- `adapter_2streams` the same in 2 parts (`streams=2`: page ranges on 2 connections in one
                   snapshot, decoded in 2 threads)
- `copy_csv`       the previous reader: the same checks over asyncpg, `COPY ... TO STDOUT (FORMAT csv)`
                   parsed by polars in batches (bench/copy_csv_reader.py, kept here to compare)
- `psql_devnull`   `psql -c "\\copy (SELECT ...) to /dev/null"`: the wall time of the psql process,
                   the issue's reference (target: the adapter at >= 0.9x its speed)

and, with `--methods all`, these too:

- `adbc`           the bare driver: `SELECT *` with ADBC, `fetch_record_batch()` -> polars, no checks
- `adbc_bound`     the same with the filter and the limit bound as `$1`, `$2`: ADBC then runs a
                   prepared statement instead of a COPY, and libpq holds the whole result in memory
                   (why the adapter binds values through set_config() and keeps the read unbound)
- `fetch`          asyncpg `fetch` of the whole result, then columns -> polars
- `cursor`         asyncpg server-side cursor, `batch_rows` rows at a time, each batch -> polars
- `copy_binary`    COPY ... TO STDOUT (FORMAT binary), decoded by a pure-Python parser -> polars
- `binary_wire`    COPY binary received and thrown away: the transfer floor, not a usable method
- `psql_reference` `psql \\copy` to a CSV file, then `pl.read_csv` of that file

Wall-clock figures depend on whatever else runs on the machine (the load average is printed before
and after); client and server CPU seconds are printed beside them because they are steadier. Nothing
here gates CI.

    .venv/bin/python bench/read_table.py                       # 1M x 20: the comparison above
    .venv/bin/python bench/read_table.py --keep --runs 5       # reuse the table if present, keep it
    .venv/bin/python bench/read_table.py --columns 10 --methods all
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import adbc_driver_postgresql.dbapi as adbc  # noqa: E402
import asyncpg  # noqa: E402
import polars as pl  # noqa: E402

# Imported before any timer starts, in every child alike, so no method pays for imports.
from adapters.postgres.table_source import SqlDatasetSource  # noqa: E402
from copy_csv_reader import copy_csv_load  # noqa: E402
from domain.data import TableRef  # noqa: E402

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
COMPARISON = ("adapter", "adapter_2streams", "copy_csv", "psql_devnull")
METHODS = (
    *COMPARISON,
    *("adbc", "adbc_bound", "fetch", "cursor", "copy_binary", "binary_wire", "psql_reference"),
)
REFERENCE = "psql_devnull"
TARGET_VS_PSQL = 0.9

# (column, SQL expression over g, polars dtype, kind for the pure-Python binary COPY decoder)
COLUMNS: list[tuple[str, str, Any, str]] = [
    ("id", "g::bigint", pl.Int64, "q"),
    ("tenantId", "'t' || (g % 7)", pl.String, "s"),
    ("age", "CASE WHEN g % 13 = 0 THEN NULL ELSE (18 + g % 60)::int END", pl.Int32, "i"),
    ("score", "CASE WHEN g % 17 = 0 THEN NULL ELSE (g * 0.37)::float8 END", pl.Float64, "d"),
    ("revenue", "round((g % 100000) * 1.01, 2)::numeric(12, 2)", pl.Float64, "d"),
    ("region", "(ARRAY['north', 'south', 'east', 'west'])[1 + g % 4]", pl.String, "s"),
    ("name", "CASE WHEN g % 10 = 0 THEN NULL ELSE 'customer ' || md5(g::text) END", pl.String, "s"),
    ("active", "(g % 3 = 0)", pl.Boolean, "b"),
    ("created_at", "timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second 250 microseconds'",
     pl.Datetime("us", "UTC"), "t"),
    ("birthday", "date '1950-01-01' + (g % 20000)", pl.Date, "D"),
    # --columns 20 adds these: more of the platform's mix (ints, floats with nulls, text, booleans,
    # timestamps with and without a time zone).
    ("visits", "(g % 500)::smallint", pl.Int16, "h"),
    ("clicks", "CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 1000)::int END", pl.Int32, "i"),
    ("ltv", "CASE WHEN g % 7 = 0 THEN NULL ELSE sin(g) * 1000 END", pl.Float64, "d"),
    ("ctr", "(g % 997) / 997.0::float8", pl.Float64, "d"),
    ("last_seen",
     "CASE WHEN g % 19 = 0 THEN NULL ELSE timestamp '2023-01-01' + g * interval '17 seconds' END",
     pl.Datetime("us"), "t"),
    ("channel", "(ARRAY['email', 'sms', 'push', 'web', 'app'])[1 + g % 5]", pl.String, "s"),
    ("email", "'user' || g || '@example.com'", pl.String, "s"),
    ("opted_in", "CASE WHEN g % 5 = 0 THEN NULL ELSE g % 2 = 0 END", pl.Boolean, "b"),
    ("orders", "g::bigint * 7919", pl.Int64, "q"),
    ("updated_at", "timestamptz '2024-06-01 00:00:00+00' - g * interval '3 seconds'",
     pl.Datetime("us", "UTC"), "t"),
]  # fmt: skip


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Shape:
    width: int

    @property
    def columns(self) -> list[tuple[str, str, Any, str]]:
        return COLUMNS[: self.width]

    @property
    def table(self) -> str:
        return "ds_ml_worker_bench_read_table" + ("" if self.width == 10 else f"_{self.width}")

    @property
    def schema(self) -> dict[str, Any]:
        return {name: dtype for name, _, dtype, _ in self.columns}

    def create_sql(self, rows: int) -> str:
        exprs = ",\n       ".join(f"{expr} AS {q(name)}" for name, expr, _, _ in self.columns)
        return (
            f"DROP TABLE IF EXISTS {self.table};\n"
            f"CREATE TABLE {self.table} AS\nSELECT {exprs}\nFROM generate_series(1, {int(rows)}) AS g;\n"
            f"ANALYZE {self.table};"
        )

    @property
    def select_all(self) -> str:
        return f"SELECT {', '.join(q(name) for name, _, _, _ in self.columns)} FROM {self.table}"

    @property
    def select_float(self) -> str:
        # Numeric as float8 on the server for the object-building methods: asyncpg's Decimal objects
        # would otherwise dominate their time, and the adapter reads numeric as Float64 too.
        return self.select_all.replace('"revenue"', '"revenue"::float8 AS revenue')


# --- methods (run in the child) -------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    dsn: str
    rows: int
    batch_rows: int
    max_rows: int
    shape: Shape


async def m_adapter(o: Options) -> pl.DataFrame:
    # The whole table, every tenant, as the other methods read it: the tenant rule is not measured.
    source = SqlDatasetSource(o.dsn, require_tenant_filter=False)
    try:
        dataset = await source.load(TableRef(o.shape.table), max_rows=o.max_rows)
    finally:
        await source.close()
    return dataset.frame  # type: ignore[attr-defined, no-any-return]


async def m_adapter_2streams(o: Options) -> pl.DataFrame:
    source = SqlDatasetSource(o.dsn, streams=2, require_tenant_filter=False)
    try:
        dataset = await source.load(TableRef(o.shape.table), max_rows=o.max_rows)
    finally:
        await source.close()
    return dataset.frame  # type: ignore[attr-defined, no-any-return]


async def m_copy_csv(o: Options) -> pl.DataFrame:
    return await copy_csv_load(o.dsn, o.shape.table, max_rows=o.max_rows, batch_rows=o.batch_rows)


async def m_adbc(o: Options) -> pl.DataFrame:
    with adbc.connect(o.dsn) as conn, conn.cursor() as cursor:
        cursor.execute(o.shape.select_float)
        frames = [pl.from_arrow(batch) for batch in cursor.fetch_record_batch()]
    return pl.concat(frames, rechunk=False)  # type: ignore[arg-type]


async def m_adbc_bound(o: Options) -> pl.DataFrame:
    with adbc.connect(o.dsn) as conn, conn.cursor() as cursor:
        cursor.execute(f"{o.shape.select_float} WHERE id > $1 LIMIT $2", (0, o.max_rows + 1))
        frames = [pl.from_arrow(batch) for batch in cursor.fetch_record_batch()]
    return pl.concat(frames, rechunk=False)  # type: ignore[arg-type]


def frame_from_records(records: list[Any], schema: dict[str, Any]) -> pl.DataFrame:
    columns = list(zip(*records, strict=True)) if records else [() for _ in schema]
    return pl.DataFrame(
        {
            name: pl.Series(name, values, dtype=dtype)
            for (name, dtype), values in zip(schema.items(), columns, strict=True)
        }
    )


async def m_fetch(o: Options) -> pl.DataFrame:
    conn = await asyncpg.connect(o.dsn)
    try:
        return frame_from_records(await conn.fetch(o.shape.select_float), o.shape.schema)
    finally:
        await conn.close()


async def m_cursor(o: Options) -> pl.DataFrame:
    conn = await asyncpg.connect(o.dsn)
    frames = []
    try:
        async with conn.transaction(readonly=True):
            cursor = await conn.cursor(o.shape.select_float)
            while batch := await cursor.fetch(o.batch_rows):
                frames.append(frame_from_records(batch, o.shape.schema))
    finally:
        await conn.close()
    return pl.concat(frames)


_EPOCH_2000_US = 946_684_800_000_000
_EPOCH_2000_DAYS = 10_957


def decode_binary_copy(buf: bytes, shape: Shape) -> pl.DataFrame:
    """PostgreSQL's binary COPY format, for the bench columns only, one Python step per field."""
    unpack_h, unpack_i = struct.Struct(">h").unpack_from, struct.Struct(">i").unpack_from
    unpack_q, unpack_d = struct.Struct(">q").unpack_from, struct.Struct(">d").unpack_from
    (ext_len,) = unpack_i(buf, 15)
    pos = 19 + ext_len
    kinds = [kind for _, _, _, kind in shape.columns]
    cols: list[list[Any]] = [[] for _ in kinds]
    while True:
        (fields,) = unpack_h(buf, pos)
        pos += 2
        if fields == -1:
            break
        for i in range(fields):
            (length,) = unpack_i(buf, pos)
            pos += 4
            if length < 0:
                cols[i].append(None)
                continue
            kind = kinds[i]
            if kind == "s":
                cols[i].append(buf[pos : pos + length].decode())
            elif kind == "q" or kind == "t":
                cols[i].append(unpack_q(buf, pos)[0])
            elif kind == "i" or kind == "D":
                cols[i].append(unpack_i(buf, pos)[0])
            elif kind == "h":
                cols[i].append(unpack_h(buf, pos)[0])
            elif kind == "d":
                cols[i].append(unpack_d(buf, pos)[0])
            else:
                cols[i].append(buf[pos] == 1)
            pos += length
    frame = pl.DataFrame({name: values for name, values in zip(shape.schema, cols, strict=True)})
    fixes = []
    for name, _, dtype, kind in shape.columns:
        if kind == "t":
            fixes.append((pl.col(name) + _EPOCH_2000_US).cast(dtype))
        elif kind == "D":
            fixes.append((pl.col(name) + _EPOCH_2000_DAYS).cast(pl.Int32).cast(pl.Date))
        elif kind in ("i", "h"):
            fixes.append(pl.col(name).cast(dtype))
    return frame.with_columns(fixes)


async def copy_binary_bytes(dsn: str, sql: str) -> bytes:
    conn = await asyncpg.connect(dsn)
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    try:
        await conn.copy_from_query(sql, output=sink, format="binary")
    finally:
        await conn.close()
    return b"".join(chunks)


async def m_copy_binary(o: Options) -> pl.DataFrame:
    return decode_binary_copy(await copy_binary_bytes(o.dsn, o.shape.select_float), o.shape)


async def m_binary_wire(o: Options) -> pl.DataFrame:
    data = await copy_binary_bytes(o.dsn, o.shape.select_float)
    return pl.DataFrame({"bytes": [len(data)]})


async def run_psql(dsn: str, meta_command: str) -> None:
    psql = await asyncio.create_subprocess_exec(
        "psql", dsn, "-q", "-v", "ON_ERROR_STOP=1", "-c", meta_command, env={**os.environ, "PGTZ": "UTC"}
    )
    if await psql.wait() != 0:
        raise RuntimeError(f"psql {meta_command[:40]} failed")


async def m_psql_devnull(o: Options) -> pl.DataFrame:
    # The reference exactly: text format (psql's default), written nowhere.
    await run_psql(o.dsn, f"\\copy ({o.shape.select_all}) to /dev/null")
    return pl.DataFrame({"rows": [o.rows]})


async def m_psql_reference(o: Options) -> pl.DataFrame:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        await run_psql(o.dsn, f"\\copy ({o.shape.select_all}) TO '{path}' WITH (FORMAT csv)")
        booleans = [name for name, dtype in o.shape.schema.items() if dtype == pl.Boolean]
        read = {**o.shape.schema, **{name: pl.String for name in booleans}}
        frame = pl.read_csv(path, has_header=False, schema=read)
    return frame.with_columns(pl.col(name) == "t" for name in booleans)


def value_check(frame: pl.DataFrame) -> dict[str, Any]:
    """A digest of every column (sums, null counts, extremes), to see that the methods agree."""
    check: dict[str, Any] = {}
    for name, dtype in frame.schema.items():
        series = frame[name]
        if dtype.is_numeric():
            value: Any = round(float(series.sum()), 2)
        elif dtype == pl.String:
            value = int(series.str.len_bytes().sum())
        elif dtype == pl.Boolean:
            value = int(series.sum())
        else:
            value = str(series.max())
        check[name] = [value, series.null_count()]
    return check


def run_child(method: str, options: Options) -> None:
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started, cpu = time.perf_counter(), time.process_time()
    frame = asyncio.run(globals()[f"m_{method}"](options))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    check: dict[str, Any] = {"shape": list(frame.shape)}
    if "id" in frame.columns:
        check.update(values=value_check(frame), dtypes=[str(d) for d in frame.dtypes])
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds + children.ru_utime + children.ru_stime,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "baseline_rss_mb": baseline_mb,
                "child_peak_rss_mb": children.ru_maxrss / 1024,
                "check": check,
            }
        )
    )


# --- parent ---------------------------------------------------------------------------------------


async def prepare_table(dsn: str, shape: Shape, rows: int, keep: bool) -> bool:
    """Create the bench table unless --keep finds it with the right row count; True if created."""
    conn = await asyncpg.connect(dsn)
    try:
        if keep:
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", shape.table)
            if exists and await conn.fetchval(f"SELECT count(*) FROM {shape.table}") == rows:
                return False
        await conn.execute(shape.create_sql(rows))
        return True
    finally:
        await conn.close()


def postgres_cpu_seconds() -> float:
    """CPU time of every local `postgres` process, plus what the postmaster collected from backends
    that already exited (cutime/cstime): the server's share of a run, as a before/after difference.
    Includes any other database activity on the machine at the time; 0 when PostgreSQL is remote."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / ticks


async def drop_table(dsn: str, shape: Shape) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {shape.table}")
    finally:
        await conn.close()


def measure(args: argparse.Namespace, methods: list[str]) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[dict[str, Any]]] = {method: [] for method in methods}
    for round_no in range(args.runs):
        for method in methods:
            server_before = postgres_cpu_seconds()
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    method,
                    *("--dsn", args.dsn, "--rows", str(args.rows), "--columns", str(args.columns)),
                    *("--batch-rows", str(args.batch_rows), "--max-rows", str(args.max_rows)),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            run = json.loads(out.stdout.strip().splitlines()[-1])
            run["server_cpu_seconds"] = postgres_cpu_seconds() - server_before
            runs[method].append(run)
        print(
            f"  round {round_no + 1}: "
            + ", ".join(f"{m} {runs[m][-1]['seconds']:.2f}s" for m in methods)
            + f" (load {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    results: dict[str, dict[str, Any]] = {}
    for method, method_runs in runs.items():
        keys = ("seconds", "cpu_seconds", "server_cpu_seconds", "peak_rss_mb", "baseline_rss_mb")
        results[method] = {key: statistics.median(run[key] for run in method_runs) for key in keys}
        results[method]["child_peak_rss_mb"] = statistics.median(r["child_peak_rss_mb"] for r in method_runs)
        results[method]["check"] = method_runs[-1]["check"]
    return results


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    reference = results.get(REFERENCE)
    print(
        f"\n{'method':<17}{'rows/s':>10}{'wall s':>8}{'client cpu s':>14}{'server cpu s':>14}"
        f"{'peak RSS MB':>13}{'(imports)':>11}{'speed vs psql':>15}"
    )
    for method, r in results.items():
        ratio = f"{reference['seconds'] / r['seconds']:.2f}x" if reference else "-"
        rss = r["child_peak_rss_mb"] if method.startswith("psql") else r["peak_rss_mb"]
        print(
            f"{method:<17}{args.rows / r['seconds']:>10,.0f}{r['seconds']:>8.2f}{r['cpu_seconds']:>14.2f}"
            f"{r['server_cpu_seconds']:>14.2f}{rss:>13.0f}{r['baseline_rss_mb']:>11.0f}{ratio:>15}"
        )
    print(
        "  client cpu: the reading process and its children (psql); server cpu: all local postgres\n"
        "  processes during the run, so it includes any other database activity on the machine;\n"
        "  peak RSS of a psql method is psql's own; (imports) is the reader's RSS before it starts"
    )
    checks = {m: r["check"] for m, r in results.items() if "values" in r["check"]}
    agreed = {json.dumps(c["values"], sort_keys=True) for c in checks.values()}
    print(f"same rows and values across methods: {'yes' if len(agreed) <= 1 else 'NO: ' + str(checks)}")
    dtypes = {json.dumps(c["dtypes"]) for c in checks.values()}
    print(f"same dtypes across methods: {'yes' if len(dtypes) <= 1 else 'NO: ' + str(dtypes)}")
    if reference and "adapter" in results:
        ratio = reference["seconds"] / results["adapter"]["seconds"]
        verdict = "meets" if ratio >= TARGET_VS_PSQL else "misses"
        print(
            f"adapter at {ratio:.2f}x the speed of psql \\copy to /dev/null: {verdict} the "
            f"{TARGET_VS_PSQL}x target on this machine (needs a quiet one to count)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL", DEFAULT_DSN))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, choices=(10, 20), default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=100_000, help="copy_csv's and cursor's batch")
    parser.add_argument(
        "--max-rows",
        type=int,
        default=0,
        help="the adapter's max_rows (default: --rows, the worst case where it counts rows first)",
    )
    parser.add_argument("--methods", default=",".join(COMPARISON), help="comma-separated, or `all`")
    parser.add_argument("--keep", action="store_true", help="reuse the table if present and keep it after")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = Shape(args.columns)
    args.max_rows = args.max_rows or args.rows
    if args.child:
        run_child(args.child, Options(args.dsn, args.rows, args.batch_rows, args.max_rows, shape))
        return

    methods = list(METHODS) if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    started = time.perf_counter()
    created = asyncio.run(prepare_table(args.dsn, shape, args.rows, args.keep))
    print(
        f"table {shape.table}: {args.rows:,} rows x {args.columns} columns "
        f"({'created' if created else 'reused'} in {time.perf_counter() - started:.1f}s); "
        f"load average {os.getloadavg()[0]:.2f}; "
        f"{os.cpu_count()} CPUs; {args.runs} interleaved runs per method, medians"
    )
    try:
        results = measure(args, methods)
    finally:
        if not args.keep:
            asyncio.run(drop_table(args.dsn, shape))
    report(args, results)
    print(f"load average now {os.getloadavg()[0]:.2f} (wall figures are only comparable on a quiet machine)")


if __name__ == "__main__":
    main()
