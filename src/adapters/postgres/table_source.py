"""`SqlDatasetSource`: the `table` form of `data`, read from the platform's PostgreSQL into polars.

How a request becomes a read, one module per step:

- `catalogue`: the names. Table, columns and filter keys are checked, then looked up in the
  catalogue as bound parameters; SQL is built only from the catalogue's own names, quoted.
- `access`: which tables are readable at all (a name pattern, never the job store's table) and
  the tenant filter a tenant-scoped table needs.
- `read_plan`: the rows. Filter values and the limit are bound; more than `max_rows` matching rows
  is refused (PAYLOAD_TOO_LARGE), never silently sampled.
- `copy_reader`: the values, streamed with COPY as CSV and parsed by polars in batches.
- `engine` and `errors`: the pool, and driver errors turned into the port's errors.

Safety. One `REPEATABLE READ READ ONLY` transaction per load, with a local `statement_timeout`; the
row count check and the COPY see the same snapshot.

Failures. Connect errors, lost connections and the statement timeout are DEPENDENCY_UNAVAILABLE; the
pool pings connections before use and drops any connection that failed mid-protocol, so the source
recovers by itself when the database is back.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from adapters.frames import FrameDataset, PolarsDataset
from adapters.postgres.access import table_access
from adapters.postgres.catalogue import (
    TableRequest,
    checked_request,
    resolve_table,
    selected_columns,
)
from adapters.postgres.copy_reader import copy_frame, csv_decoding, prepare_session
from adapters.postgres.engine import driver_connection, table_engine
from adapters.postgres.errors import shown_reason, table_read_error
from adapters.postgres.read_plan import plan_read, too_large
from application.ports import DatasetSource
from domain.data import DataSpec, TableRef
from domain.errors import ValidationFailed, WorkerError, field_error


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
        batch_rows: int = 100_000,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if not allowed_schemas:
            raise ValueError("allowed_schemas must name at least one schema")
        if statement_timeout_ms < 1 or batch_rows < 1 or connect_timeout_s <= 0:
            raise ValueError("statement_timeout_ms, batch_rows and connect_timeout_s must be positive")
        self._allowed_schemas = tuple(allowed_schemas)
        self._access = table_access(
            self._allowed_schemas,
            pattern=table_pattern,
            hidden_tables=hidden_tables,
            require_tenant_filter=require_tenant_filter,
        )
        self._statement_timeout_ms = int(statement_timeout_ms)
        self._batch_rows = int(batch_rows)
        self._connect_timeout_s = float(connect_timeout_s)
        self._engine = table_engine(
            url, connect_timeout_s=self._connect_timeout_s, statement_timeout_ms=self._statement_timeout_ms
        )

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
            async with (
                driver_connection(self._engine, self._connect_timeout_s) as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                frame = await self._read(conn, request, max_rows)
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
            async with driver_connection(self._engine, self._connect_timeout_s) as conn:
                await conn.fetchval("SELECT 1", timeout=self._connect_timeout_s)
        except Exception as exc:
            return f"PostgreSQL unavailable: {shown_reason(exc)}"
        return None

    async def close(self) -> None:
        await self._engine.dispose()

    async def _read(self, conn: Any, request: TableRequest, max_rows: int) -> pl.DataFrame:
        await prepare_session(conn, self._statement_timeout_ms)
        table = await resolve_table(conn, request, self._allowed_schemas)
        columns = selected_columns(table, request)
        self._access.check_table(table, request)
        plan = plan_read(table, columns, request, max_rows)
        await conn.execute(plan.settings_sql, *plan.setting_values)
        if plan.count_first and await conn.fetchval(plan.count_sql) > max_rows:
            raise too_large(request, max_rows)
        decoding = csv_decoding(plan.columns)
        frame = await copy_frame(
            conn,
            plan.select_sql(decoding.select),
            decoding,
            batch_rows=self._batch_rows,
            timeout_s=self._statement_timeout_ms / 1000 + self._connect_timeout_s,
        )
        if frame.height > max_rows:  # the count was skipped on stale statistics: refuse all the same
            raise too_large(request, max_rows)
        return frame
