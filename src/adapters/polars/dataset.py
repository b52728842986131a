"""The Dataset every adapter produces and every computation adapter reads: a polars frame."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from domain.data import ColumnKind, Dataset


def column_kind(dtype: pl.DataType) -> ColumnKind:
    if dtype == pl.Boolean:
        return ColumnKind.BOOLEAN
    if dtype.is_numeric():
        return ColumnKind.NUMERIC
    if dtype.is_temporal():
        return ColumnKind.TEMPORAL
    return ColumnKind.CATEGORICAL


@dataclass(frozen=True)
class PolarsDataset(Dataset):
    """A loaded table. Picklable (polars frames pickle as Arrow IPC), so it crosses to workers."""

    frame: pl.DataFrame

    @property
    def row_count(self) -> int:
        return self.frame.height

    @property
    def schema(self) -> Mapping[str, ColumnKind]:
        return {name: column_kind(dtype) for name, dtype in self.frame.schema.items()}
