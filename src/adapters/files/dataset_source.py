"""CSV and Parquet files into a polars frame, for the offline CLI (`FileRef`; the HTTP API has no
file form).

Columns come out with the types the other sources give: CSV text is not parsed as dates (a
timestamp column stays text, as it would be sent inline as JSON), Parquet decimals become floats
and dictionary-encoded text becomes plain text, as from the database. At most `max_rows + 1` rows
are read, so an oversized file is refused without loading it whole.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import polars as pl

from adapters.frames import FrameDataset, PolarsDataset
from application.errors import PayloadTooLarge
from application.ports import DatasetSource
from domain.data import DataSpec, FileFormat, FileRef
from domain.errors import ValidationFailed, column_error, field_error

EXTENSIONS: dict[str, FileFormat] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# Rows polars looks at to choose a CSV column's type; a later value that does not fit (3.5 after
# a run of integers) makes us read again with the whole file as the sample.
CSV_INFER_ROWS = 10_000
_MAX_REASON_CHARS = 300


def file_format(spec: FileRef) -> FileFormat:
    if spec.format is not None:
        return spec.format
    suffix = Path(spec.path).suffix.lower()
    found = EXTENSIONS.get(suffix)
    if found is None:
        message = (
            f"cannot tell the format of '{spec.path}' from its extension {suffix or '(none)'}; "
            "name it .csv or .parquet, or give the format (--format csv|parquet)"
        )
        raise ValidationFailed(message, [field_error("data.path", message)])
    return found


def _unreadable(path: str, fmt: str, error: BaseException) -> ValidationFailed:
    # polars messages run to several lines of hints; the first line says what is wrong.
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:_MAX_REASON_CHARS]
    message = f"cannot read '{path}' as {fmt}: {reason}"
    return ValidationFailed(message, [field_error("data.path", message)])


def _scan(path: str, fmt: FileFormat, infer_rows: int | None) -> pl.LazyFrame:
    # glob=False: the path names one file, never a pattern of several.
    if fmt == "parquet":
        return pl.scan_parquet(path, glob=False)
    return pl.scan_csv(path, glob=False, infer_schema_length=infer_rows, try_parse_dates=False)


def _collect(path: str, fmt: FileFormat, max_rows: int) -> pl.DataFrame:
    try:
        return _scan(path, fmt, CSV_INFER_ROWS).head(max_rows + 1).collect()
    except pl.exceptions.ComputeError:
        if fmt != "csv":
            raise
        return _scan(path, fmt, None).head(max_rows + 1).collect()


def _normalised(path: str, frame: pl.DataFrame) -> pl.DataFrame:
    columns: list[pl.Series] = []
    for series in frame.get_columns():
        dtype = series.dtype
        if dtype == pl.Null or (dtype == pl.String and series.null_count() == series.len() > 0):
            # An all-empty column: numeric and missing, as an all-null inline column is.
            series = series.cast(pl.Float64)
        elif isinstance(dtype, pl.Decimal):
            series = series.cast(pl.Float64)
        elif isinstance(dtype, pl.Categorical | pl.Enum):
            series = series.cast(pl.String)
        elif dtype.is_nested() or dtype == pl.Binary or dtype == pl.Object:
            message = (
                f"column '{series.name}' of '{path}' holds {dtype} values; a column must hold numbers, "
                "text, booleans or timestamps"
            )
            raise ValidationFailed(message, [column_error(series.name, f"unsupported type {dtype}")])
        columns.append(series)
    return pl.DataFrame(columns)


def read_file(spec: FileRef, max_rows: int) -> pl.DataFrame:
    fmt = file_format(spec)
    path = spec.path
    if not os.path.isfile(path):
        reason = "is a directory, not a file" if os.path.isdir(path) else "does not exist"
        message = f"'{path}' {reason}"
        raise ValidationFailed(message, [field_error("data.path", message)])
    try:
        frame = _collect(path, fmt, max_rows)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise _unreadable(path, fmt, error) from None
    if frame.height > max_rows:
        raise PayloadTooLarge(
            f"'{path}' has more than {max_rows} rows; this worker accepts at most {max_rows} "
            "(ML_WORKER_MAX_ROWS)"
        )
    return _normalised(path, frame)


class FileDatasetSource(DatasetSource[pl.DataFrame]):
    async def load(self, spec: DataSpec, *, max_rows: int) -> FrameDataset:
        if not isinstance(spec, FileRef):
            raise ValidationFailed("this source reads files only", [field_error("data", "not a file")])
        return PolarsDataset(await asyncio.to_thread(read_file, spec, max_rows))

    async def check(self) -> str | None:
        return None
