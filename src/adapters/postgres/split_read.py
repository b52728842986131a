"""A large read split into page ranges, each part streamed on its own connection and thread, all in
the snapshot of the load's transaction.

Why: the driver decodes one stream on one core. At 1M x 20 that decoding (about 1.5 CPU-seconds)
is the slowest step of a read, slower than the server writing the rows (about 1.2) and about as
long as `psql \\copy` takes for everything; with parts, the client decodes and the server writes on
as many cores as there are parts.

When (`parts`): a plain or materialised table (views and partitioned tables have no page ranges of
their own), PostgreSQL 14 or later (TID range scans; before, every part would scan the whole table)
and not a standby (which cannot export a snapshot), a read of every matching row (a request
`limit` takes "the first rows the server returns", which parts cannot reproduce), and a large one
(the count, or the planner's estimate, at least `split_rows`), with spare connections.

Same rows: each part imports the load's snapshot (`pg_export_snapshot`), sets the same session
settings and bound values, and reads the rows stored in its pages; the parts in page order are the
rows one stream would return. The last range is open-ended, so pages added since the catalogue
lookup are read too. Same limit: the parts share a row count checked after every batch; past
max_rows, every part stops at its next batch and the load is PAYLOAD_TOO_LARGE, as for one stream.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from typing import Any

import polars as pl

from adapters.postgres.adbc_pool import READ_TRANSACTION, AdbcPool, ReadHandle, batches, rows
from adapters.postgres.arrow_reader import SESSION_SQL, ArrowDecoding
from adapters.postgres.catalogue import CatalogueTable
from adapters.postgres.read_plan import ReadPlan

_SPLIT_KINDS = frozenset({"r", "m"})
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f-]+")
Pages = tuple[int, int | None]


class TooManyRows(Exception):
    """The parts together passed max_rows."""


class _Stopped(Exception):
    """Another part failed: this one stops too (its error is not the one reported)."""


class RowCount:
    """Rows read so far by every part of one load, and a flag that stops them all."""

    def __init__(self, max_rows: int) -> None:
        self._max_rows = max_rows
        self._lock = threading.Lock()
        self._total = 0
        self._stopped = False

    def add(self, n: int) -> None:
        with self._lock:
            self._total += n
            exceeded, stopped = self._total > self._max_rows, self._stopped
        if exceeded:
            raise TooManyRows
        if stopped:
            raise _Stopped

    def stop(self) -> None:
        with self._lock:
            self._stopped = True


def parts(
    table: CatalogueTable, plan: ReadPlan, expected_rows: float, *, streams: int, split_rows: int
) -> int:
    """How many parts to read in (1: one stream)."""
    if streams < 2 or not plan.every_match or table.kind not in _SPLIT_KINDS or not table.split_reads:
        return 1
    if expected_rows < split_rows or table.pages < 2 * streams:
        return 1
    return streams


def page_ranges(pages: int, n: int) -> list[Pages]:
    bounds = [pages * i // n for i in range(n)]
    return [(first, bounds[i + 1] if i + 1 < n else None) for i, first in enumerate(bounds)]


def stream(
    cursor: Any, sql: str, decoding: ArrowDecoding, handle: ReadHandle, count: RowCount | None
) -> pl.DataFrame:
    cursor.execute(sql)
    reader = batches(cursor)
    with handle.streaming(cursor):
        return decoding.frame(_checked(reader, handle, count), reader.schema)


def read_in_parts(
    cursor: Any,
    pool: AdbcPool,
    handle: ReadHandle,
    submit: Callable[..., Future[pl.DataFrame]],
    read: tuple[ReadPlan, ArrowDecoding, str, RowCount],
    ranges: list[Pages],
) -> list[pl.DataFrame]:
    """The first range on `cursor` (the load's transaction), the others through `submit` (a thread
    each); the frames in page order."""
    plan, decoding, timeout_ms, count = read
    snapshot = rows(cursor, "SELECT pg_catalog.pg_export_snapshot() AS snapshot")[0]["snapshot"]
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    others = [
        submit(_read_part, pool, handle, snapshot, plan, decoding, timeout_ms, count, pages)
        for pages in ranges[1:]
    ]
    errors: list[BaseException] = []
    try:
        first = stream(cursor, plan.select_sql(decoding.select, ranges[0]), decoding, handle, count)
    except BaseException as exc:
        count.stop()
        errors.append(exc)
    # The parts imported the snapshot of this transaction: it stays open until they are done.
    wait(others)
    errors += [error for part in others if (error := part.exception()) is not None]
    if errors:
        # The first part's own failure, in page order, not the stops it caused in the others.
        raise next((e for e in errors if not isinstance(e, _Stopped)), errors[0])
    return [first, *(part.result() for part in others)]


def _read_part(
    pool: AdbcPool,
    handle: ReadHandle,
    snapshot: str,
    plan: ReadPlan,
    decoding: ArrowDecoding,
    timeout_ms: str,
    count: RowCount,
    pages: Pages,
) -> pl.DataFrame:
    try:
        with pool.transaction(READ_TRANSACTION, handle) as cursor:
            cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            rows(cursor, SESSION_SQL, (timeout_ms,))
            rows(cursor, plan.settings_sql, tuple(plan.setting_values))
            return stream(cursor, plan.select_sql(decoding.select, pages), decoding, handle, count)
    except BaseException:
        count.stop()
        raise


def _checked(reader: Any, handle: ReadHandle, count: RowCount | None) -> Iterator[Any]:
    for batch in reader:
        handle.checkpoint()  # an abandoned read stops converting at the next batch
        if count is not None:
            count.add(batch.num_rows)
        yield batch
