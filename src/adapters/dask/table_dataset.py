"""Large tables go to the Dask cluster: the `DatasetSource` that decides, and the dataset it returns.

The decision is made here, once, behind the port: a `table` request whose matching rows (the
planner's estimate of the whole table first, then a `count(*)` bounded by the cluster's own row
limit) reach `min_rows` becomes a `DaskTableDataset` when a scheduler is configured; everything
else goes to the local source as before. A `DaskTableDataset` holds the checked read, never its
rows: the Dask workers read them (adapters/postgres/partition_read.py), so the API replica's memory
does not grow with the table, and it says so through `computed_elsewhere`, which is how the use
cases skip the local memory budget without knowing the backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.dask.cluster import DaskCluster
from adapters.postgres.partition_read import TableRead
from adapters.postgres.table_source import SqlDatasetSource
from application.errors import DependencyUnavailable
from application.ports import DatasetSource
from domain.data import ColumnKind, Dataset, DataSpec, TableRef


class DaskTableDataset(Dataset[TableRead]):
    __slots__ = ("_read",)

    def __init__(self, read: TableRead) -> None:
        self._read = read

    def __repr__(self) -> str:
        return f"DaskTableDataset({self._read.table.sql}, {self._read.rows} rows)"

    @property
    def frame(self) -> TableRead:
        return self._read

    @property
    def row_count(self) -> int:
        return self._read.rows

    @property
    def schema(self) -> Mapping[str, ColumnKind]:
        return self._read.schema

    @property
    def computed_elsewhere(self) -> bool:
        return True

    def distinct_counts(self, columns: Sequence[str]) -> Mapping[str, int]:
        # Not known without reading the rows; the cluster counts them when it encodes. Nothing
        # here asks: a dataset computed elsewhere has no local budget to estimate.
        return {}


class DaskTableSource(DatasetSource[Any]):
    """`local` reads everything that stays on this replica (inline data, small tables); `table` is
    the same SQL source it uses, asked here only to plan and count."""

    def __init__(
        self,
        local: DatasetSource[Any],
        table: SqlDatasetSource,
        cluster: DaskCluster,
        *,
        min_rows: int,
        max_rows: int,
    ) -> None:
        if not 1 <= min_rows <= max_rows:
            raise ValueError("the Dask row limits need 1 <= min_rows <= max_rows")
        self._local = local
        self._table = table
        self._cluster = cluster
        self._min_rows = min_rows
        self._max_rows = max_rows

    async def load(self, spec: DataSpec, *, max_rows: int) -> Dataset[Any]:
        if isinstance(spec, TableRef):
            read = await self._table.describe(spec, max_rows=self._max_rows, at_least=self._min_rows)
            if read is not None:
                reason = await self._cluster.check()
                if reason is not None:
                    raise DependencyUnavailable(
                        f"this table has {read.rows} matching rows, which are trained on the Dask "
                        f"cluster, and {reason}; try again later"
                    )
                return DaskTableDataset(read)
        return await self._local.load(spec, max_rows=max_rows)

    async def check(self) -> str | None:
        return await self._local.check()
