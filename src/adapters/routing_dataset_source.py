"""Sends each kind of `data` to the source that can read it."""

from __future__ import annotations

import polars as pl

from adapters.frames import FrameDataset
from application.ports import DatasetSource
from domain.data import DataSpec, FileRef, TableRef
from domain.errors import ValidationFailed, field_error


class RoutingDatasetSource(DatasetSource[pl.DataFrame]):
    """`files` is given only to the offline CLI's container: the service never reads its own disk,
    even if a `FileRef` were somehow built from a request."""

    def __init__(
        self,
        inline: DatasetSource[pl.DataFrame],
        table: DatasetSource[pl.DataFrame] | None,
        files: DatasetSource[pl.DataFrame] | None = None,
    ) -> None:
        self._inline = inline
        self._table = table
        self._files = files

    async def load(self, spec: DataSpec, *, max_rows: int) -> FrameDataset:
        if isinstance(spec, TableRef):
            if self._table is None:
                raise ValidationFailed(
                    "this worker has no database configured (DATABASE_URL); send the data inline "
                    "as `rows` or `columns`",
                    [field_error("data.table", "no database configured")],
                )
            return await self._table.load(spec, max_rows=max_rows)
        if isinstance(spec, FileRef):
            if self._files is None:
                raise ValidationFailed(
                    "this worker does not read files; send the data inline or as a table",
                    [field_error("data", "files are read by the offline CLI only")],
                )
            return await self._files.load(spec, max_rows=max_rows)
        return await self._inline.load(spec, max_rows=max_rows)

    async def check(self) -> str | None:
        return await self._table.check() if self._table is not None else None
