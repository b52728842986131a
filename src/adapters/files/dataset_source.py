"""CSV and Parquet files into a polars frame, for the offline CLI (`FileRef`; the HTTP API has no
file form).

Columns come out with the types the other sources give (adapters/columnar.py, shared with the
Arrow and Parquet bodies of the HTTP API): CSV text is not parsed as dates (a timestamp column stays
text, as it would be sent inline as JSON), Parquet decimals become floats and dictionary-encoded text
becomes plain text, as from the database. An oversized file is refused without loading it whole: a
Parquet file by its footer's row count, a CSV file after `max_rows + 1` rows.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import polars as pl

from adapters.columnar import ReadFailure, first_line, normalised, parquet_frame
from adapters.frames import FrameDataset, PolarsDataset
from application.errors import PayloadTooLarge
from application.ports import DatasetSource
from domain.data import DataSpec, FileFormat, FileRef
from domain.errors import ValidationFailed, field_error

EXTENSIONS: dict[str, FileFormat] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# Rows polars looks at to choose a CSV column's type; a later value that does not fit (3.5 after
# a run of integers) makes us read again with the whole file as the sample.
CSV_INFER_ROWS = 10_000


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


def _unreadable(path: str, fmt: str, reason: str) -> ValidationFailed:
    message = f"cannot read '{path}' as {fmt}: {reason}"
    return ValidationFailed(message, [field_error("data.path", message)])


def _scan_csv(path: str, infer_rows: int | None) -> pl.LazyFrame:
    # glob=False: the path names one file, never a pattern of several.
    return pl.scan_csv(path, glob=False, infer_schema_length=infer_rows, try_parse_dates=False)


def _read_csv(path: str, max_rows: int) -> pl.DataFrame:
    try:
        try:
            frame = _scan_csv(path, CSV_INFER_ROWS).head(max_rows + 1).collect()
        except pl.exceptions.ComputeError:
            frame = _scan_csv(path, None).head(max_rows + 1).collect()
    except (OSError, pl.exceptions.PolarsError) as error:
        raise _unreadable(path, "csv", first_line(error)) from None
    if frame.height > max_rows:
        raise PayloadTooLarge(
            f"'{path}' has more than {max_rows} rows; this worker accepts at most {max_rows} "
            "(ML_WORKER_MAX_ROWS)"
        )
    return normalised(frame, f"'{path}'")


def read_file(spec: FileRef, max_rows: int) -> pl.DataFrame:
    fmt = file_format(spec)
    path = spec.path
    if not os.path.isfile(path):
        reason = "is a directory, not a file" if os.path.isdir(path) else "does not exist"
        message = f"'{path}' {reason}"
        raise ValidationFailed(message, [field_error("data.path", message)])
    if fmt == "csv":
        return _read_csv(path, max_rows)
    try:
        return parquet_frame(path, max_rows, f"'{path}'")
    except ReadFailure as failure:
        raise _unreadable(path, fmt, failure.reason) from None


class FileDatasetSource(DatasetSource[pl.DataFrame]):
    async def load(self, spec: DataSpec, *, max_rows: int) -> FrameDataset:
        if not isinstance(spec, FileRef):
            raise ValidationFailed("this source reads files only", [field_error("data", "not a file")])
        return PolarsDataset(await asyncio.to_thread(read_file, spec, max_rows))

    async def check(self) -> str | None:
        return None
