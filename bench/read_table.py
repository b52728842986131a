"""Benchmark: 1,000,000 rows x 10 columns from PostgreSQL into a polars frame, method by method.

Each method runs in a fresh subprocess (so peak RSS is its own), `--runs` times; the table shows
medians. Methods:

- `adapter`        SqlDatasetSource.load: COPY ... TO STDOUT (FORMAT csv), cut into batches parsed by
                   polars in a thread while the next batch arrives (the method the worker uses)
- `fetch`          asyncpg `fetch` of the whole result, then columns -> polars
- `cursor`         asyncpg server-side cursor, `batch_rows` rows at a time, each batch -> polars
- `copy_binary`    COPY ... TO STDOUT (FORMAT binary), decoded by a pure-Python parser -> polars
- `binary_wire`    COPY binary received and thrown away: the transfer floor, not a usable method
- `psql_reference` `psql \\copy` to a CSV file, then `pl.read_csv` of that file (the reference)

Wall-clock figures depend on whatever else runs on the machine (the load average is printed);
client CPU seconds are printed beside them because they are steadier. Nothing here gates CI.

    .venv/bin/python bench/read_table.py                 # create, measure, drop
    .venv/bin/python bench/read_table.py --keep          # reuse the table if present, keep it
    .venv/bin/python bench/read_table.py --methods adapter,psql_reference --runs 5
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

import asyncpg  # noqa: E402
import polars as pl  # noqa: E402

# Imported before any timer starts, in every child alike, so no method pays for imports.
from adapters.postgres.table_source import SqlDatasetSource  # noqa: E402
from domain.data import TableRef  # noqa: E402

TABLE = "ds_ml_worker_bench_read_table"  # readable: ML_WORKER_TABLE_PATTERN is ^ds_
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
METHODS = ("adapter", "fetch", "cursor", "copy_binary", "binary_wire", "psql_reference")
TARGET_ROWS_PER_S = 500_000

CREATE_SQL = f"""
DROP TABLE IF EXISTS {TABLE};
CREATE TABLE {TABLE} AS
SELECT g::bigint AS id,
       't' || (g % 7) AS "tenantId",
       CASE WHEN g % 13 = 0 THEN NULL ELSE (18 + g % 60)::int END AS age,
       CASE WHEN g % 17 = 0 THEN NULL ELSE (g * 0.37)::float8 END AS score,
       round((g % 100000) * 1.01, 2)::numeric(12, 2) AS revenue,
       (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4] AS region,
       CASE WHEN g % 10 = 0 THEN NULL ELSE 'customer ' || md5(g::text) END AS name,
       (g % 3 = 0) AS active,
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second 250 microseconds' AS created_at,
       date '1950-01-01' + (g % 20000) AS birthday
FROM generate_series(1, {{rows}}) AS g;
ANALYZE {TABLE};
"""
SELECT_ALL = (
    f'SELECT id, "tenantId", age, score, revenue, region, name, active, created_at, birthday FROM {TABLE}'
)
# Numeric as float8 on the server for the object-building methods: asyncpg's Decimal objects would
# otherwise dominate their time, and the adapter reads numeric as Float64 too.
SELECT_FLOAT = SELECT_ALL.replace("revenue,", "revenue::float8 AS revenue,")
SCHEMA: dict[str, Any] = {
    "id": pl.Int64,
    "tenantId": pl.String,
    "age": pl.Int32,
    "score": pl.Float64,
    "revenue": pl.Float64,
    "region": pl.String,
    "name": pl.String,
    "active": pl.Boolean,
    "created_at": pl.Datetime("us", "UTC"),
    "birthday": pl.Date,
}


# --- methods (run in the child) -------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    dsn: str
    rows: int
    batch_rows: int
    max_rows: int


async def m_adapter(o: Options) -> pl.DataFrame:
    # The whole table, every tenant, as the other methods read it: the tenant rule is not measured.
    source = SqlDatasetSource(o.dsn, batch_rows=o.batch_rows, require_tenant_filter=False)
    try:
        dataset = await source.load(TableRef(TABLE), max_rows=o.max_rows)
    finally:
        await source.close()
    return dataset.frame  # type: ignore[attr-defined, no-any-return]


def frame_from_records(records: list[Any]) -> pl.DataFrame:
    columns = list(zip(*records, strict=True)) if records else [() for _ in SCHEMA]
    return pl.DataFrame(
        {
            name: pl.Series(name, values, dtype=dtype)
            for (name, dtype), values in zip(SCHEMA.items(), columns, strict=True)
        }
    )


async def m_fetch(o: Options) -> pl.DataFrame:
    conn = await asyncpg.connect(o.dsn)
    try:
        return frame_from_records(await conn.fetch(SELECT_FLOAT))
    finally:
        await conn.close()


async def m_cursor(o: Options) -> pl.DataFrame:
    conn = await asyncpg.connect(o.dsn)
    frames = []
    try:
        async with conn.transaction(readonly=True):
            cursor = await conn.cursor(SELECT_FLOAT)
            while batch := await cursor.fetch(o.batch_rows):
                frames.append(frame_from_records(batch))
    finally:
        await conn.close()
    return pl.concat(frames)


_EPOCH_2000_US = 946_684_800_000_000
_EPOCH_2000_DAYS = 10_957


def decode_binary_copy(buf: bytes) -> pl.DataFrame:
    """PostgreSQL's binary COPY format, for the 10 bench columns only, one Python step per field."""
    unpack_h, unpack_i = struct.Struct(">h").unpack_from, struct.Struct(">i").unpack_from
    unpack_q, unpack_d = struct.Struct(">q").unpack_from, struct.Struct(">d").unpack_from
    (ext_len,) = unpack_i(buf, 15)
    pos = 19 + ext_len
    cols: list[list[Any]] = [[] for _ in range(10)]
    kinds = ("q", "s", "i", "d", "d", "s", "s", "b", "t", "D")
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
            elif kind == "d":
                cols[i].append(unpack_d(buf, pos)[0])
            else:
                cols[i].append(buf[pos] == 1)
            pos += length
    frame = pl.DataFrame({name: values for name, values in zip(SCHEMA, cols, strict=True)})
    return frame.with_columns(
        pl.col("age").cast(pl.Int32),
        (pl.col("created_at") + _EPOCH_2000_US).cast(pl.Datetime("us", "UTC")),
        (pl.col("birthday") + _EPOCH_2000_DAYS).cast(pl.Int32).cast(pl.Date),
    )


async def copy_binary_bytes(dsn: str) -> bytes:
    conn = await asyncpg.connect(dsn)
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    try:
        await conn.copy_from_query(SELECT_FLOAT, output=sink, format="binary")
    finally:
        await conn.close()
    return b"".join(chunks)


async def m_copy_binary(o: Options) -> pl.DataFrame:
    return decode_binary_copy(await copy_binary_bytes(o.dsn))


async def m_binary_wire(o: Options) -> pl.DataFrame:
    data = await copy_binary_bytes(o.dsn)
    return pl.DataFrame({"bytes": [len(data)]})


# Seconds spent in `psql \copy` alone, reported beside the reference's total (copy + read_csv).
PHASES: dict[str, float] = {}


async def m_psql_reference(o: Options) -> pl.DataFrame:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        psql = await asyncio.create_subprocess_exec(
            "psql",
            o.dsn,
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f"\\copy ({SELECT_ALL}) TO '{path}' WITH (FORMAT csv)",
            env={**os.environ, "PGTZ": "UTC"},
        )
        if await psql.wait() != 0:
            raise RuntimeError("psql \\copy failed")
        PHASES["psql_copy_seconds"] = time.perf_counter() - started
        read = {**SCHEMA, "active": pl.String}
        frame = pl.read_csv(path, has_header=False, schema=read)
    return frame.with_columns(pl.col("active") == "t")


def run_child(method: str, options: Options) -> None:
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started, cpu = time.perf_counter(), time.process_time()
    frame = asyncio.run(globals()[f"m_{method}"](options))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    check: dict[str, Any] = {"shape": list(frame.shape)}
    if "id" in frame.columns:
        check.update(
            id_sum=int(frame["id"].sum()),
            name_nulls=frame["name"].null_count(),
            revenue_sum=round(float(frame["revenue"].sum()), 2),
            last_created=str(frame["created_at"].max()),
            dtypes=[str(d) for d in frame.dtypes],
        )
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds + children.ru_utime + children.ru_stime,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "baseline_rss_mb": baseline_mb,
                "child_peak_rss_mb": children.ru_maxrss / 1024,
                "check": check,
                **PHASES,
            }
        )
    )


# --- parent ---------------------------------------------------------------------------------------


async def prepare_table(dsn: str, rows: int, keep: bool) -> bool:
    """Create the bench table unless --keep finds it with the right row count; True if created."""
    conn = await asyncpg.connect(dsn)
    try:
        if keep:
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", TABLE)
            if exists and await conn.fetchval(f"SELECT count(*) FROM {TABLE}") == rows:
                return False
        await conn.execute(CREATE_SQL.format(rows=int(rows)))
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


async def drop_table(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL", DEFAULT_DSN))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument(
        "--max-rows",
        type=int,
        default=0,
        help="the adapter's max_rows (default: --rows, the worst case where it counts rows first)",
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--keep", action="store_true", help="reuse the table if present and keep it after")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, Options(args.dsn, args.rows, args.batch_rows, args.max_rows or args.rows))
        return

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    started = time.perf_counter()
    created = asyncio.run(prepare_table(args.dsn, args.rows, args.keep))
    print(
        f"table {TABLE}: {args.rows:,} rows x 10 columns ({'created' if created else 'reused'} "
        f"in {time.perf_counter() - started:.1f}s); load average {os.getloadavg()[0]:.2f}; "
        f"{os.cpu_count()} CPUs; {args.runs} runs per method, medians"
    )
    results: dict[str, dict[str, Any]] = {}
    try:
        for method in methods:
            runs = []
            for _ in range(args.runs):
                server_before = postgres_cpu_seconds()
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        method,
                        "--dsn",
                        args.dsn,
                        "--rows",
                        str(args.rows),
                        "--batch-rows",
                        str(args.batch_rows),
                        "--max-rows",
                        str(args.max_rows),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                runs[-1]["server_cpu_seconds"] = postgres_cpu_seconds() - server_before
            results[method] = {
                key: statistics.median(run[key] for run in runs)
                for key in (
                    "seconds",
                    "cpu_seconds",
                    "server_cpu_seconds",
                    "peak_rss_mb",
                    "baseline_rss_mb",
                    "child_peak_rss_mb",
                    *(["psql_copy_seconds"] if method == "psql_reference" else []),
                )
            }
            results[method]["check"] = runs[-1]["check"]
            results[method]["all_seconds"] = [round(run["seconds"], 2) for run in runs]
            print(f"  {method}: {results[method]['all_seconds']} s", flush=True)
    finally:
        if not args.keep:
            asyncio.run(drop_table(args.dsn))

    print()
    print(
        f"{'method':<16}{'rows/s':>10}{'wall s':>8}{'client cpu s':>14}{'server cpu s':>14}"
        f"{'peak RSS MB':>13}{'(imports)':>11}{'vs psql':>9}"
    )
    reference = results.get("psql_reference")
    for method, r in results.items():
        rate = args.rows / r["seconds"]
        ratio = f"{reference['seconds'] / r['seconds']:.2f}x" if reference else "-"
        print(
            f"{method:<16}{rate:>10,.0f}{r['seconds']:>8.2f}{r['cpu_seconds']:>14.2f}"
            f"{r['server_cpu_seconds']:>14.2f}{r['peak_rss_mb']:>13.0f}{r['baseline_rss_mb']:>11.0f}{ratio:>9}"
        )
    print(
        "  client cpu: the reading process (and psql for the reference); server cpu: all local postgres\n"
        "  processes during the run, so it includes any other database activity on the machine"
    )
    if reference and "psql_copy_seconds" in reference:
        copy_only = reference["psql_copy_seconds"]
        print(f"  psql \\copy alone, no parsing: {copy_only:.2f} s = {args.rows / copy_only:,.0f} rows/s")
    if reference:
        print(f"  (psql's own peak RSS: {reference['child_peak_rss_mb']:.0f} MB, not included above)")
    checks = {m: r["check"] for m, r in results.items() if "id_sum" in r["check"]}
    agreed = {
        json.dumps({k: v for k, v in c.items() if k != "dtypes"}, sort_keys=True) for c in checks.values()
    }
    print(f"same rows and values across methods: {'yes' if len(agreed) <= 1 else 'NO: ' + str(checks)}")
    print(f"load average now {os.getloadavg()[0]:.2f} (wall figures are only comparable on a quiet machine)")
    if "adapter" in results:
        rate = args.rows / results["adapter"]["seconds"]
        verdict = "meets" if rate >= TARGET_ROWS_PER_S else "is below"
        print(
            f"adapter: {rate:,.0f} rows/s {verdict} the {TARGET_ROWS_PER_S:,} rows/s target on this machine"
        )
        print(f"adapter dtypes: {results['adapter']['check'].get('dtypes')}")


if __name__ == "__main__":
    main()
