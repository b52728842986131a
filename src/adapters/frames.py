"""The frame the data sources produce and the computations read: a polars DataFrame. The ports take
it as their type parameter (`DatasetSource[pl.DataFrame]`, `Segmenter[pl.DataFrame]`, ...), so a
computation receives `Dataset[pl.DataFrame]` and reads `.frame` without a downcast."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from domain.data import ColumnKind, Dataset

FrameDataset = Dataset[pl.DataFrame]


def column_kind(dtype: pl.DataType) -> ColumnKind:
    if dtype == pl.Boolean:
        return ColumnKind.BOOLEAN
    if dtype.is_numeric():
        return ColumnKind.NUMERIC
    if dtype.is_temporal():
        return ColumnKind.TEMPORAL
    return ColumnKind.CATEGORICAL


class PolarsDataset(Dataset[pl.DataFrame]):
    """A loaded table. Picklable (polars frames pickle as Arrow IPC); the process pool sends the
    frame as a memory-mapped file instead (adapters/compute/shared_frames.py)."""

    __slots__ = ("_frame",)

    def __init__(self, frame: pl.DataFrame) -> None:
        self._frame = frame

    def __repr__(self) -> str:
        return f"PolarsDataset({self._frame.height} rows x {self._frame.width} columns)"

    @property
    def frame(self) -> pl.DataFrame:
        return self._frame

    @property
    def row_count(self) -> int:
        return self.frame.height

    def distinct_counts(self, columns: Sequence[str]) -> Mapping[str, int]:
        return {name: int(self.frame[name].drop_nulls().n_unique()) for name in columns}

    @property
    def schema(self) -> Mapping[str, ColumnKind]:
        return {name: column_kind(dtype) for name, dtype in self.frame.schema.items()}
