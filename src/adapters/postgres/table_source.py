"""`SqlDatasetSource`: the `table` form of `data`, read from the platform's PostgreSQL into polars.

How a request becomes a read, one module per step:

- `catalogue`: the names. Table, columns and filter keys are checked, then looked up in the
  catalogue as bound parameters; SQL is built only from the catalogue's own names, quoted.
- `access`: which tables are readable at all (a name pattern, never the job store's table) and
  the tenant filter a tenant-scoped table needs.
- `read_plan`: the rows. Filter values and the limit are bound; more than `max_rows` matching rows
  is refused (PAYLOAD_TOO_LARGE), never silently sampled.
- `arrow_reader`: the values, streamed by the ADBC driver as binary COPY into Arrow batches, each
  turned into polars; its docstring has the type mapping.
- `split_read`: with `streams` > 1, a large read of a whole table (or of every row matching the
  filters) in parts: page ranges read on as many connections in the load's snapshot, decoded in
  parallel.
- `adbc_pool`, `engine` and `errors`: the connections, the URL, and driver errors turned into the
  port's errors.

Safety. One `REPEATABLE READ READ ONLY` transaction per load, with a local `statement_timeout`; the
catalogue lookup, the row count and the read see the same snapshot. The statement timeout is the
budget of the whole load: each statement gets what is left of it.

Not blocking the event loop. ADBC is synchronous, so a load runs in one of this source's threads
(`connections` of them, plus as many for the extra parts of split reads); the event loop waits at
most the statement timeout plus `connect_timeout_s`, then gives up (DEPENDENCY_UNAVAILABLE), asks
the server to cancel every statement of the load, and lets the threads end on their own. A load's
slot is freed only when its thread ends, so threads that a dead network holds cannot pile up: past
`connections` of them, a load waits for a slot for at most twice `connect_timeout_s`, then is
DEPENDENCY_UNAVAILABLE.

Failures. Connect errors, lost connections and the statement timeout are DEPENDENCY_UNAVAILABLE; a
pooled connection found dead is replaced before the load's first statement, and any connection
that failed mid-protocol is closed, so the source recovers by itself when the database is back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import polars as pl

from adapters.frames import FrameDataset, PolarsDataset
from adapters.postgres.access import table_access
from adapters.postgres.adbc_pool import READ_TRANSACTION, AdbcPool, ReadHandle, rows
from adapters.postgres.arrow_reader import SESSION_SQL, arrow_decoding
from adapters.postgres.catalogue import (
    TableRequest,
    catalogue_query,
    catalogue_table,
    checked_request,
    selected_columns,
)
from adapters.postgres.engine import libpq_conninfo
from adapters.postgres.errors import shown_reason, table_read_error
from adapters.postgres.partition_read import TableRead
from adapters.postgres.read_plan import plan_read, too_large
from adapters.postgres.split_read import RowCount, TooManyRows, page_ranges, parts, read_in_parts, stream
from application.errors import DependencyUnavailable
from application.ports import DatasetSource
from domain.data import DataSpec, TableRef
from domain.errors import ValidationFailed, WorkerError, field_error

T = TypeVar("T")
_BUDGET_SQL = "SELECT set_config('statement_timeout', $1, true)"


class SqlDatasetSource(DatasetSource[pl.DataFrame]):
    """Reads a `TableRef` from PostgreSQL (see the module docstring for the rules and the why)."""

    def __init__(
        self,
        url: str,
        *,
        allowed_schemas: tuple[str, ...] = ("public",),
        table_pattern: str = "^ds_",
        hidden_tables: tuple[str, ...] = (),
        require_tenant_filter: bool = True,
        statement_timeout_ms: int = 60000,
        batch_bytes: int = 16 << 20,
        connect_timeout_s: float = 5.0,
        connections: int = 8,
        # One stream by default: on the shared 2-core bench machine (database on the same cores) 2
        # parts were between 0.8x and 1.1x the speed of one over four runs, CPU within noise
        # (bench/read_table.py, adapter vs adapter_2streams). They should pay where the client has
        # cores of its own (a remote database): measure there before changing the default.
        streams: int = 1,
        split_rows: int = 200_000,
    ) -> None:
        if not allowed_schemas:
            raise ValueError("allowed_schemas must name at least one schema")
        if min(statement_timeout_ms, batch_bytes, connect_timeout_s, connections, streams) <= 0:
            raise ValueError(
                "statement_timeout_ms, batch_bytes, connect_timeout_s, connections, streams: all positive"
            )
        self._allowed_schemas = tuple(allowed_schemas)
        self._access = table_access(
            self._allowed_schemas,
            pattern=table_pattern,
            hidden_tables=hidden_tables,
            require_tenant_filter=require_tenant_filter,
        )
        self._statement_timeout_ms = int(statement_timeout_ms)
        self._connect_timeout_s = float(connect_timeout_s)
        conninfo = libpq_conninfo(url, connect_timeout_s=self._connect_timeout_s)
        self._pool = AdbcPool(conninfo, size=connections, batch_bytes=int(batch_bytes))
        self._threads = ThreadPoolExecutor(max_workers=connections, thread_name_prefix="table-read")
        self._slots = asyncio.Semaphore(connections)
        self._streams, self._split_rows = int(streams), int(split_rows)
        # The extra parts of split reads: at most `connections` more connections and threads.
        self._part_threads = ThreadPoolExecutor(max_workers=connections, thread_name_prefix="table-read-part")
        self._part_slots = _Slots(connections)

    async def load(self, spec: DataSpec, *, max_rows: int) -> FrameDataset:
        if not isinstance(spec, TableRef):
            raise ValidationFailed(
                "the SQL data source reads only the `table` form of data",
                [field_error("data", f"expected a table reference, got {type(spec).__name__}")],
            )
        if max_rows < 1:
            raise ValueError("max_rows must be positive")
        request = checked_request(spec, self._allowed_schemas)
        self._access.check_name(request)
        try:
            late = _late(self._statement_timeout_ms)
            frame = await self._in_thread(self._read, request, max_rows, wait_s=self._read_wait_s, late=late)
        except WorkerError:
            raise
        except Exception as exc:
            translated = table_read_error(
                exc, filtered=bool(request.filters), statement_timeout_ms=self._statement_timeout_ms
            )
            if translated is None:
                raise
            raise translated from exc
        return PolarsDataset(frame)

    async def describe(self, spec: TableRef, *, max_rows: int, at_least: int) -> TableRead | None:
        """The read `load` would make, checked and counted but not read, for a backend whose own
        workers read it (partition_read.py); None when fewer than `at_least` rows match (the
        planner's estimate of the whole table says so, or the count does), and PAYLOAD_TOO_LARGE past
        `max_rows`. One REPEATABLE READ READ ONLY transaction, like a load."""
        request = checked_request(spec, self._allowed_schemas)
        self._access.check_name(request)
        late = _late(self._statement_timeout_ms)
        try:
            return await self._in_thread(
                self._describe, request, max_rows, at_least, wait_s=self._read_wait_s, late=late
            )
        except WorkerError:
            raise
        except Exception as exc:
            translated = table_read_error(
                exc, filtered=bool(request.filters), statement_timeout_ms=self._statement_timeout_ms
            )
            if translated is None:
                raise
            raise translated from exc

    async def check(self) -> str | None:
        try:
            # A health check must answer soon: a connect (or a pooled connection's reconnect) and a ping.
            wait_s = 2 * self._connect_timeout_s
            await self._in_thread(self._ping, wait_s=wait_s, late=f"no answer within {wait_s:g} s")
        except Exception as exc:
            return f"PostgreSQL unavailable: {shown_reason(exc)}"
        return None

    async def close(self) -> None:
        self._pool.close()
        # Threads still held by a dead network end on their own; nothing waits for them.
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._part_threads.shutdown(wait=False, cancel_futures=True)

    async def _in_thread(self, work: Callable[..., T], *args: Any, wait_s: float, late: str) -> T:
        """`work(handle, *args)` in one of the source's threads, waited for at most `wait_s` (then
        DEPENDENCY_UNAVAILABLE saying `late`)."""
        try:
            async with asyncio.timeout(2 * self._connect_timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise DependencyUnavailable("every connection to PostgreSQL is busy; try again") from None
        handle = ReadHandle()
        try:
            future = asyncio.get_running_loop().run_in_executor(self._threads, work, handle, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._thread_ended)
        try:
            done, _ = await asyncio.wait({future}, timeout=wait_s)
        except asyncio.CancelledError:
            handle.abandon()
            raise
        if not done:
            handle.abandon()
            raise DependencyUnavailable(late)
        return future.result()

    @property
    def _read_wait_s(self) -> float:
        # The server cancels at the statement timeout; the margin covers the connect and the answer.
        return self._statement_timeout_ms / 1000 + self._connect_timeout_s

    def _thread_ended(self, future: asyncio.Future[Any]) -> None:
        self._slots.release()
        if not future.cancelled():
            future.exception()  # an abandoned read's error is not reported twice, nor as "never retrieved"

    # --- in the source's threads ------------------------------------------------------------------

    def _read(self, handle: ReadHandle, request: TableRequest, max_rows: int) -> pl.DataFrame:
        deadline = time.monotonic() + self._statement_timeout_ms / 1000
        with self._pool.transaction(READ_TRANSACTION, handle) as cursor:
            rows(cursor, SESSION_SQL, (str(self._statement_timeout_ms),))
            sql, params = catalogue_query(request, self._allowed_schemas)
            table = catalogue_table(rows(cursor, sql, params), request, self._allowed_schemas)
            columns = selected_columns(table, request)
            self._access.check_table(table, request)
            plan = plan_read(table, columns, request, max_rows)
            rows(cursor, plan.settings_sql, tuple(plan.setting_values))
            expected_rows = table.estimated_rows
            if plan.count_first:
                rows(cursor, _BUDGET_SQL, (_budget_ms(deadline, self._statement_timeout_ms),))
                expected_rows = rows(cursor, plan.count_sql)[0]["count"]
                if expected_rows > max_rows:
                    raise too_large(request, max_rows)
            timeout_ms = _budget_ms(deadline, self._statement_timeout_ms)
            rows(cursor, _BUDGET_SQL, (timeout_ms,))
            decoding = arrow_decoding(plan.columns)
            n = parts(table, plan, expected_rows, streams=self._streams, split_rows=self._split_rows)
            helpers = self._part_slots.take(n - 1)
            try:
                if helpers:
                    read = (plan, decoding, timeout_ms, RowCount(max_rows))
                    ranges = page_ranges(table.pages, 1 + helpers)
                    frames = read_in_parts(cursor, self._pool, handle, self._submit_part, read, ranges)
                    frame = pl.concat(frames, how="vertical", rechunk=False)
                else:
                    frame = stream(cursor, plan.select_sql(decoding.select), decoding, handle, None)
            except TooManyRows:
                raise too_large(request, max_rows) from None
            finally:
                self._part_slots.give(helpers)
        if frame.height > max_rows:  # the count was skipped on stale statistics: refuse all the same
            raise too_large(request, max_rows)
        return frame

    def _describe(
        self, handle: ReadHandle, request: TableRequest, max_rows: int, at_least: int
    ) -> TableRead | None:
        with self._pool.transaction(READ_TRANSACTION, handle) as cursor:
            rows(cursor, SESSION_SQL, (str(self._statement_timeout_ms),))
            sql, params = catalogue_query(request, self._allowed_schemas)
            table = catalogue_table(rows(cursor, sql, params), request, self._allowed_schemas)
            columns = selected_columns(table, request)
            self._access.check_table(table, request)
            # Filters only narrow the table: an estimate of the whole table below `at_least` is
            # enough to stay local without a count (stale statistics only cost the local path).
            if 0 < table.estimated_rows < at_least or (request.limit or at_least) < at_least:
                return None
            plan = plan_read(table, columns, request, max_rows)
            rows(cursor, plan.settings_sql, tuple(plan.setting_values))
            count = int(rows(cursor, plan.count_sql)[0]["count"])
        if count > max_rows:
            raise too_large(request, max_rows)
        if count < at_least:
            return None
        return TableRead(
            table, request, plan, arrow_decoding(plan.columns), count, max_rows, self._statement_timeout_ms
        )

    def _submit_part(self, work: Callable[..., pl.DataFrame], *args: Any) -> Future[pl.DataFrame]:
        return self._part_threads.submit(work, *args)

    def _ping(self, handle: ReadHandle) -> None:
        with self._pool.transaction(READ_TRANSACTION, handle) as cursor:
            rows(cursor, "SELECT 1 AS one")


def _budget_ms(deadline: float, statement_timeout_ms: int) -> str:
    left_ms = int((deadline - time.monotonic()) * 1000)
    if left_ms < 1:
        raise DependencyUnavailable(_late(statement_timeout_ms))
    return str(left_ms)


def _late(statement_timeout_ms: int) -> str:
    return f"the database did not answer within the statement timeout ({statement_timeout_ms} ms)"


class _Slots:
    """Spare connections for the extra parts of split reads, taken without waiting: a read that
    finds none reads in one stream."""

    def __init__(self, n: int) -> None:
        self._lock = threading.Lock()
        self._free = n

    def take(self, wanted: int) -> int:
        with self._lock:
            taken = max(0, min(wanted, self._free))
            self._free -= taken
            return taken

    def give(self, n: int) -> None:
        with self._lock:
            self._free += n
