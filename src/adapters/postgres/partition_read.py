"""A table read planned in one process and read, part by part, in others (the Dask workers): the
same catalogue-checked, read-only, bound-parameter read as `SqlDatasetSource`, cut into page ranges.

- Planned once (`SqlDatasetSource.describe`): the names checked against the catalogue and the access
  rules, the tenant filter required, the values bound as settings, the matching rows counted up to
  `max_rows + 1`. `TableRead` is that plan: SQL built from catalogue names only, the request's
  values kept apart as setting values; no row and no credential.
- Read where it is computed (`read_part`): each part opens its own `REPEATABLE READ READ ONLY`
  transaction with its own connection, from the DATABASE_URL of the process that reads it (a
  Dask worker's environment), so no password travels in a task graph (the scheduler's dashboard
  shows task arguments). Every part binds the same filter values and carries the same
  `LIMIT max_rows + 1`; past `max_rows` the part is PAYLOAD_TOO_LARGE, and the caller checks the
  parts' total against `max_rows` too.
- One snapshot (`exported_snapshot`): the caller holds a transaction open while the parts are
  read and each part imports its snapshot, so the parts together are the rows of one moment, as
  for a split read on one machine (split_read.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import polars as pl

from adapters.postgres.adbc_pool import READ_TRANSACTION, AdbcPool, ReadHandle, rows
from adapters.postgres.arrow_reader import SESSION_SQL, ArrowDecoding
from adapters.postgres.catalogue import FLOAT_TYPES, INTEGER_TYPES, CatalogueTable, TableRequest
from adapters.postgres.engine import libpq_conninfo
from adapters.postgres.errors import table_read_error
from adapters.postgres.read_plan import ReadPlan, too_large
from adapters.postgres.split_read import Pages, RowCount, TooManyRows, page_ranges, stream
from application.errors import DependencyUnavailable
from domain.data import ColumnKind

_SPLIT_KINDS = frozenset({"r", "m"})
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f-]+")
_TEMPORAL_TYPES = frozenset(
    {"date", "timestamp without time zone", "timestamp with time zone", "time without time zone"}
)
_URL_VARIABLES = ("DATABASE_URL", "ML_WORKER_DATABASE_URL")
_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TableRead:
    table: CatalogueTable
    request: TableRequest
    plan: ReadPlan
    decoding: ArrowDecoding
    rows: int  # matching rows when the read was planned (at most max_rows)
    max_rows: int
    statement_timeout_ms: int

    @property
    def schema(self) -> Mapping[str, ColumnKind]:
        """The column kinds the frame of the read will have (arrow_reader.py's type mapping)."""
        return {column.name: column_kind(column.data_type) for column in self.plan.columns}

    @property
    def splittable(self) -> bool:
        # Page ranges need a plain or materialised table and TID range scans (split_read.py); a
        # request `limit` is kept by reading it whole per part and trimming (see the trainer).
        return self.table.kind in _SPLIT_KINDS and self.table.split_reads and self.table.pages >= 2

    def parts(self, n: int) -> list[Pages | None]:
        """`n` page ranges (the last open-ended), or the whole read as one part when the relation
        cannot be split."""
        if not self.splittable:
            return [None]
        return list(page_ranges(self.table.pages, max(1, min(n, self.table.pages // 2))))


def column_kind(data_type: str) -> ColumnKind:
    if data_type in INTEGER_TYPES or data_type in FLOAT_TYPES or data_type == "double precision":
        return ColumnKind.NUMERIC
    if data_type == "boolean":
        return ColumnKind.BOOLEAN
    if data_type in _TEMPORAL_TYPES:
        return ColumnKind.TEMPORAL
    return ColumnKind.CATEGORICAL


def database_url() -> str:
    """The reading process's own DATABASE_URL (a Dask worker's environment)."""
    for name in _URL_VARIABLES:
        url = os.environ.get(name)
        if url:
            return url
    raise DependencyUnavailable(
        "this Dask worker has no DATABASE_URL: set it in the workers' environment to the platform database"
    )


def _pool(url: str | None) -> AdbcPool:
    conninfo = libpq_conninfo(url or database_url(), connect_timeout_s=_CONNECT_TIMEOUT_S)
    return AdbcPool(conninfo, size=1, batch_bytes=16 << 20)


def read_part(
    read: TableRead, pages: Pages | None, *, snapshot: str | None = None, url: str | None = None
) -> pl.DataFrame:
    """The rows of one part (all rows of the read when `pages` is None)."""
    pool, handle = _pool(url), ReadHandle()
    plan, decoding = read.plan, read.decoding
    try:
        with pool.transaction(READ_TRANSACTION, handle) as cursor:
            if snapshot is not None:
                cursor.execute(f"SET TRANSACTION SNAPSHOT '{_checked_snapshot(snapshot)}'")
            rows(cursor, SESSION_SQL, (str(read.statement_timeout_ms),))
            rows(cursor, plan.settings_sql, tuple(plan.setting_values))
            sql = plan.select_sql(decoding.select, pages)
            return stream(cursor, sql, decoding, handle, RowCount(read.max_rows))
    except TooManyRows:
        raise too_large(read.request, read.max_rows) from None
    except DependencyUnavailable:
        raise
    except Exception as exc:
        translated = table_read_error(
            exc, filtered=bool(read.request.filters), statement_timeout_ms=read.statement_timeout_ms
        )
        if translated is None:
            raise
        raise translated from exc
    finally:
        pool.close()


@contextmanager
def exported_snapshot(url: str) -> Iterator[str]:
    """A snapshot id valid while the block runs: parts that import it read the same moment."""
    pool, handle = _pool(url), ReadHandle()
    try:
        with pool.transaction(READ_TRANSACTION, handle) as cursor:
            snapshot = rows(cursor, "SELECT pg_catalog.pg_export_snapshot() AS snapshot")[0]["snapshot"]
            yield _checked_snapshot(snapshot)
    finally:
        pool.close()


def _checked_snapshot(snapshot: str) -> str:
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    return snapshot


__all__ = ["Pages", "TableRead", "column_kind", "exported_snapshot", "read_part"]
