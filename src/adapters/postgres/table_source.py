"""`SqlDatasetSource`: the `table` form of `data`, read from the platform's PostgreSQL into polars.

How a request becomes a read, one module per step:

- `catalogue`: the names. Table, columns and filter keys are checked, then looked up in the
  catalogue as bound parameters; SQL is built only from the catalogue's own names, quoted.
- `read_plan`: the rows. Filter values and the limit are bound; more than `max_rows` matching rows
  is refused (PAYLOAD_TOO_LARGE), never silently sampled.
- `arrow_reader`: the values, streamed by the ADBC driver as binary COPY into Arrow batches, each
  turned into polars; its docstring has the type mapping.
- `adbc_pool`, `engine` and `errors`: the connections, the URL, and driver errors turned into the
  port's errors.

Safety. One `REPEATABLE READ READ ONLY` transaction per load, with a local `statement_timeout`; the
catalogue lookup, the row count and the read see the same snapshot. The statement timeout is the
budget of the whole load: each statement gets what is left of it.

Not blocking the event loop. ADBC is synchronous, so a load runs in one of this source's threads
(as many as connections, `connections`); the event loop waits at most the statement timeout plus
`connect_timeout_s`, then gives up (DEPENDENCY_UNAVAILABLE), asks the server to cancel, and lets the
thread end on its own. A thread's connection slot is freed only when the thread ends, so threads
that a dead network holds cannot pile up: past `connections` of them, a load waits for a slot for
at most twice `connect_timeout_s`, then is DEPENDENCY_UNAVAILABLE.

Failures. Connect errors, lost connections and the statement timeout are DEPENDENCY_UNAVAILABLE; a
pooled connection found dead is replaced before the load's first statement, and any connection
that failed mid-protocol is closed, so the source recovers by itself when the database is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import polars as pl

from adapters.frames import FrameDataset, PolarsDataset
from adapters.postgres.adbc_pool import AdbcPool, ReadHandle
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
from adapters.postgres.read_plan import plan_read, too_large
from application.errors import DependencyUnavailable
from application.ports import DatasetSource
from domain.data import DataSpec, TableRef
from domain.errors import ValidationFailed, WorkerError, field_error

T = TypeVar("T")
_BEGIN_SQL = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_BUDGET_SQL = "SELECT set_config('statement_timeout', $1, true)"


class SqlDatasetSource(DatasetSource[pl.DataFrame]):
    """Reads a `TableRef` from PostgreSQL (see the module docstring for the rules and the why)."""

    def __init__(
        self,
        url: str,
        *,
        allowed_schemas: tuple[str, ...] = ("public",),
        statement_timeout_ms: int = 60000,
        batch_bytes: int = 16 << 20,
        connect_timeout_s: float = 5.0,
        connections: int = 8,
    ) -> None:
        if not allowed_schemas:
            raise ValueError("allowed_schemas must name at least one schema")
        if statement_timeout_ms < 1 or batch_bytes < 1 or connect_timeout_s <= 0 or connections < 1:
            raise ValueError(
                "statement_timeout_ms, batch_bytes, connect_timeout_s and connections must be positive"
            )
        self._allowed_schemas = tuple(allowed_schemas)
        self._statement_timeout_ms = int(statement_timeout_ms)
        self._connect_timeout_s = float(connect_timeout_s)
        conninfo = libpq_conninfo(url, connect_timeout_s=self._connect_timeout_s)
        self._pool = AdbcPool(conninfo, size=connections, batch_bytes=int(batch_bytes))
        self._threads = ThreadPoolExecutor(max_workers=connections, thread_name_prefix="table-read")
        self._slots = asyncio.Semaphore(connections)

    async def load(self, spec: DataSpec, *, max_rows: int) -> FrameDataset:
        if not isinstance(spec, TableRef):
            raise ValidationFailed(
                "the SQL data source reads only the `table` form of data",
                [field_error("data", f"expected a table reference, got {type(spec).__name__}")],
            )
        if max_rows < 1:
            raise ValueError("max_rows must be positive")
        request = checked_request(spec, self._allowed_schemas)
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
        with self._pool.transaction(_BEGIN_SQL, handle) as cursor:
            _rows(cursor, SESSION_SQL, (str(self._statement_timeout_ms),))
            sql, params = catalogue_query(request, self._allowed_schemas)
            table = catalogue_table(_rows(cursor, sql, params), request, self._allowed_schemas)
            plan = plan_read(table, selected_columns(table, request), request, max_rows)
            _rows(cursor, plan.settings_sql, tuple(plan.setting_values))
            if plan.count_first:
                _rows(cursor, _BUDGET_SQL, (_budget_ms(deadline, self._statement_timeout_ms),))
                if _rows(cursor, plan.count_sql)[0]["count"] > max_rows:
                    raise too_large(request, max_rows)
            _rows(cursor, _BUDGET_SQL, (_budget_ms(deadline, self._statement_timeout_ms),))
            decoding = arrow_decoding(plan.columns)
            cursor.execute(plan.select_sql(decoding.select))
            reader = _batches(cursor)
            frame = decoding.frame(_checked(reader, handle), reader.schema)
        if frame.height > max_rows:  # the count was skipped on stale statistics: refuse all the same
            raise too_large(request, max_rows)
        return frame

    def _ping(self, handle: ReadHandle) -> None:
        with self._pool.transaction("BEGIN READ ONLY", handle) as cursor:
            _rows(cursor, "SELECT 1 AS one")


def _rows(cursor: Any, sql: str, params: tuple[Any, ...] | None = None) -> list[dict[str, Any]]:
    cursor.execute(sql, params)
    return cursor.fetch_arrow_table().to_pylist()  # type: ignore[no-any-return]


def _budget_ms(deadline: float, statement_timeout_ms: int) -> str:
    left_ms = int((deadline - time.monotonic()) * 1000)
    if left_ms < 1:
        raise DependencyUnavailable(_late(statement_timeout_ms))
    return str(left_ms)


def _late(statement_timeout_ms: int) -> str:
    return f"the database did not answer within the statement timeout ({statement_timeout_ms} ms)"


def _batches(cursor: Any) -> Any:
    """The result's record batches. Not `fetch_record_batch()`: that hands out pyarrow's own reader,
    which turns an error in mid-stream (a filter value the server cannot cast, the statement
    timeout) into a bare OSError, without the SQLSTATE the errors are told apart by. The driver's
    wrapper (what its `fetch_arrow_table()` reads through) keeps it. It is not public API: the
    version is pinned in constraints.txt, and a driver without it still reads (errors in mid-stream
    are then DEPENDENCY_UNAVAILABLE)."""
    results = getattr(cursor, "_results", None)
    reader = getattr(results, "reader", None)
    return reader if reader is not None else cursor.fetch_record_batch()


def _checked(batches: Any, handle: ReadHandle) -> Iterator[Any]:
    for batch in batches:
        handle.checkpoint()  # an abandoned read stops converting at the next batch
        yield batch
