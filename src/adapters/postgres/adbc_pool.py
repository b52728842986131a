"""ADBC connections for the table source, and the handle that lets the event loop give up on a read.

ADBC is synchronous: every call here runs in the table source's worker threads, never on the event
loop.

- Pool. Idle connections are kept (opening one costs a connect and the driver's type-catalogue
  query, tens of milliseconds). A pooled connection is not pinged: the first statement of a read is
  sent on it, and if the connection turns out dead (the database restarted while it was idle) that
  statement is sent again on a fresh one, so a restart costs one reconnect, never a failed request.
  A connection goes back to the pool only after a read that ended with its transaction rolled back
  cleanly; a lost connection, an abandoned read or a result left half-read (a rollback would first
  drain it) closes it.
- Giving up. When the caller stops waiting (cancelled, or past the timeout), `ReadHandle.abandon`
  asks the server to cancel the running statements (of every connection the read uses), from a
  thread of its own because a cancel request opens a new connection, which a dead network would
  block. The read's threads then fail or finish on their own and close their connections; TCP
  keepalives bound how long they can wait on a network that went silent.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import adbc_driver_postgresql.dbapi as adbc

from adapters.postgres.errors import unavailable

_BATCH_OPTION = "adbc.postgresql.batch_size_hint_bytes"
READ_TRANSACTION = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


class ReadAbandoned(Exception):
    """The caller gave up on this read; the thread stops at its next step."""


class ReadHandle:
    """Shared by a read's thread (which attaches its connection) and the event loop (which may
    abandon the read)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: list[Any] = []
        self._abandoned = False
        self._cut: set[int] = set()

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    def attach(self, conn: Any) -> None:
        with self._lock:
            self._conns.append(conn)

    def detach(self, conn: Any) -> bool:
        """Done with `conn`; True if the read was not abandoned. From here on `abandon` cannot
        reach this connection, so a late cancel never hits the next read that uses it."""
        with self._lock:
            self._conns = [c for c in self._conns if c is not conn]
            return not self._abandoned

    @contextmanager
    def streaming(self, cursor: Any) -> Iterator[None]:
        """Around the reading of a result: if it stops half-way on our side (max rows passed,
        abandoned), the connection is mid-COPY, and a rollback would first drain every remaining
        row; it is closed instead. A server error has already ended the COPY: it does not count."""
        try:
            yield
        except BaseException as exc:
            if not isinstance(getattr(exc, "sqlstate", None), str):
                with self._lock:
                    self._cut.add(id(cursor))
            raise

    def cut_short(self, cursor: Any) -> bool:
        with self._lock:
            return id(cursor) in self._cut

    def checkpoint(self) -> None:
        if self._abandoned:
            raise ReadAbandoned

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            conns = list(self._conns)
        for conn in conns:
            threading.Thread(target=_cancel_quietly, args=(conn,), daemon=True).start()


class AdbcPool:
    def __init__(self, conninfo: str, *, size: int, batch_bytes: int) -> None:
        self._conninfo = conninfo
        self._size = size
        self._batch_bytes = batch_bytes
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def transaction(self, begin_sql: str, handle: ReadHandle) -> Iterator[Any]:
        """A cursor inside a transaction opened with `begin_sql`; rolled back at the end (the read
        writes nothing), then the connection is pooled again if that went cleanly."""
        handle.checkpoint()
        conn, cursor = self._begin(begin_sql, handle)
        reusable = False
        try:
            handle.checkpoint()
            yield cursor
            cursor.execute("ROLLBACK")
            reusable = True
        except BaseException as exc:
            # A refusal (a bad value, read-only, the timeout, too many rows) leaves the connection
            # usable once rolled back; a lost connection or an abandoned read does not.
            if not handle.abandoned and not unavailable(exc) and not handle.cut_short(cursor):
                with contextlib.suppress(Exception):
                    cursor.execute("ROLLBACK")
                    reusable = True
            raise
        finally:
            self._release(conn, cursor, reusable=handle.detach(conn) and reusable)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn, None)

    def _begin(self, begin_sql: str, handle: ReadHandle) -> tuple[Any, Any]:
        with self._lock:
            pooled = self._idle.pop() if self._idle else None
        if pooled is not None:
            handle.attach(pooled)
            cursor = self._cursor(pooled)
            try:
                cursor.execute(begin_sql)
                return pooled, cursor
            except Exception as exc:
                _close_quietly(pooled, cursor)
                if not unavailable(exc):
                    raise
        conn = adbc.connect(self._conninfo, autocommit=True)
        handle.attach(conn)
        cursor = None
        try:
            cursor = self._cursor(conn)
            cursor.execute(begin_sql)
        except BaseException:
            _close_quietly(conn, cursor)
            raise
        return conn, cursor

    def _cursor(self, conn: Any) -> Any:
        cursor = conn.cursor()
        # Arrow batches of about this many bytes: the memory held besides the frame being built.
        cursor.adbc_statement.set_options(**{_BATCH_OPTION: str(self._batch_bytes)})
        return cursor

    def _release(self, conn: Any, cursor: Any, *, reusable: bool) -> None:
        with contextlib.suppress(Exception):
            cursor.close()
        with self._lock:
            if reusable and not self._closed and len(self._idle) < self._size:
                self._idle.append(conn)
                return
        _close_quietly(conn, None)


def rows(cursor: Any, sql: str, params: tuple[Any, ...] | None = None) -> list[dict[str, Any]]:
    cursor.execute(sql, params)
    return cursor.fetch_arrow_table().to_pylist()  # type: ignore[no-any-return]


def batches(cursor: Any) -> Any:
    """The result's record batches. Not `fetch_record_batch()`: that hands out pyarrow's own reader,
    which turns an error in mid-stream (a filter value the server cannot cast, the statement
    timeout) into a bare OSError, without the SQLSTATE the errors are told apart by. The driver's
    wrapper (what its `fetch_arrow_table()` reads through) keeps it. It is not public API: the
    version is pinned in constraints.txt, and a driver without it still reads (errors in mid-stream
    are then DEPENDENCY_UNAVAILABLE)."""
    results = getattr(cursor, "_results", None)
    reader = getattr(results, "reader", None)
    return reader if reader is not None else cursor.fetch_record_batch()


def _cancel_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.adbc_cancel()


def _close_quietly(conn: Any, cursor: Any) -> None:
    # The driver refuses to close a connection with an open statement: the cursor goes first.
    with contextlib.suppress(Exception):
        if cursor is not None:
            cursor.close()
    with contextlib.suppress(Exception):
        conn.close()
