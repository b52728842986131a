"""Inline data into a polars frame: `rows` or `columns` of a JSON body, strictly typed (a column
that mixes numbers and text is the caller's mistake and is reported by name), or a binary body (an
Arrow IPC stream or a Parquet file), decoded here, in a worker thread, by the code the file source
shares (adapters/columnar.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import polars as pl

from adapters.columnar import MAX_COLUMNS, ReadFailure, arrow_stream_frame, parquet_frame
from adapters.frames import FrameDataset, PolarsDataset
from application.errors import PayloadTooLarge
from application.ports import DatasetSource
from domain.data import DataSpec, EncodedData, InlineColumns, InlineRows, Scalar
from domain.errors import UnreadableInput, ValidationFailed, column_error, field_error

_FORMAT_NAMES = {"arrow": "an Arrow IPC stream", "parquet": "a Parquet file"}


def _series(name: str, values: Sequence[Scalar]) -> pl.Series:
    try:
        series = pl.Series(name, values, strict=True)
    except (TypeError, OverflowError, pl.exceptions.PolarsError):
        try:
            # Integers and floats in one column are one numeric column.
            series = pl.Series(name, values, dtype=pl.Float64, strict=True)
        except (TypeError, OverflowError, pl.exceptions.PolarsError):
            kinds = sorted({type(v).__name__ for v in values if v is not None})
            raise ValidationFailed(
                f"column '{name}' mixes value types ({', '.join(kinds)}); a column holds numbers, "
                "text or booleans, with null for missing",
                [column_error(name, f"mixed types: {', '.join(kinds)}")],
            ) from None
    if series.dtype.is_nested() or series.dtype == pl.Object:
        raise ValidationFailed(
            f"column '{name}' holds lists or objects; a cell is a number, text, a boolean or null",
            [column_error(name, "nested values")],
        )
    if series.dtype == pl.Null:
        return series.cast(pl.Float64)
    return series


def _check_shape(columns: Mapping[str, Sequence[Scalar]], max_rows: int) -> None:
    if len(columns) > MAX_COLUMNS:
        raise ValidationFailed(
            f"{len(columns)} columns; at most {MAX_COLUMNS} are accepted",
            [field_error("data", "too many columns")],
        )
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        expected = max(lengths.values())
        short = sorted(name for name, n in lengths.items() if n != expected)
        raise ValidationFailed(
            f"columns have different lengths: {', '.join(short[:5])} differ from {expected} values",
            [column_error(name, f"{lengths[name]} values, expected {expected}") for name in short[:20]],
        )
    rows = next(iter(lengths.values()), 0)
    if rows > max_rows:
        raise PayloadTooLarge(f"{rows} rows; this worker accepts at most {max_rows} (ML_WORKER_MAX_ROWS)")


def frame_from_columns(columns: Mapping[str, Sequence[Scalar]], max_rows: int) -> pl.DataFrame:
    _check_shape(columns, max_rows)
    return pl.DataFrame([_series(name, values) for name, values in columns.items()])


def frame_from_rows(rows: Sequence[Mapping[str, Scalar]], max_rows: int) -> pl.DataFrame:
    if len(rows) > max_rows:
        raise PayloadTooLarge(
            f"{len(rows)} rows; this worker accepts at most {max_rows} (ML_WORKER_MAX_ROWS)"
        )
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    # A key absent from a record is a missing value, like an explicit null.
    columns = {name: [row.get(name) for row in rows] for name in names}
    return frame_from_columns(columns, max_rows)


def frame_from_encoded(data: EncodedData, max_rows: int) -> pl.DataFrame:
    try:
        if data.format == "arrow":
            return arrow_stream_frame(data.content, max_rows, "the body")
        return parquet_frame(data.content, max_rows, "the body")
    except ReadFailure as failure:
        message = f"the body is not {_FORMAT_NAMES[data.format]}: {failure.reason}"
        raise UnreadableInput(message, [field_error("body", failure.reason)]) from None


class InlineDatasetSource(DatasetSource[pl.DataFrame]):
    async def load(self, spec: DataSpec, *, max_rows: int) -> FrameDataset:
        if isinstance(spec, InlineColumns):
            frame = await asyncio.to_thread(frame_from_columns, spec.columns, max_rows)
        elif isinstance(spec, InlineRows):
            frame = await asyncio.to_thread(frame_from_rows, spec.rows, max_rows)
        elif isinstance(spec, EncodedData):
            frame = await asyncio.to_thread(frame_from_encoded, spec, max_rows)
        else:
            raise ValidationFailed(
                "inline data must be `rows` or `columns`", [field_error("data", "not inline")]
            )
        return PolarsDataset(frame)

    async def check(self) -> str | None:
        return None
