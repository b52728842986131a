"""Columnar data (Arrow, Parquet, and frames read from files) into the polars frame every source
gives. The inline source (Arrow IPC stream and Parquet bodies) and the file source (the offline CLI's
Parquet and CSV files) share it, so a column has one type whichever way it came.

Types come out as the other sources give them: decimals become floats, dictionary-encoded or
categorical text becomes plain text (as from the database), an all-null column is a float column
(numeric and missing, as an all-null inline column). Lists, structs, maps, binary and the other types
no computation reads are refused by column name. Arrow data is not copied where pyarrow and polars
allow it: a numeric column of a single-batch stream is the request body's own memory.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from application.errors import PayloadTooLarge
from domain.errors import ValidationFailed, column_error, field_error

MAX_COLUMNS = 10_000
_MAX_REASON_CHARS = 300
# The Arrow IPC *file* format starts with this; the stream format does not.
_ARROW_FILE_MAGIC = b"ARROW1"


class ReadFailure(Exception):
    """The bytes or the file cannot be read as the format: the caller says where, and how to answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def first_line(error: BaseException) -> str:
    # polars and Arrow messages run to several lines of hints; the first line says what is wrong.
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:_MAX_REASON_CHARS]


def _too_many_rows(where: str, rows: int | None, max_rows: int) -> PayloadTooLarge:
    counted = f"{rows} rows" if rows is not None else f"more than {max_rows} rows"
    return PayloadTooLarge(
        f"{where} has {counted}; this worker accepts at most {max_rows} (ML_WORKER_MAX_ROWS)"
    )


def check_width(columns: int, where: str) -> None:
    if columns > MAX_COLUMNS:
        raise ValidationFailed(
            f"{where} has {columns} columns; at most {MAX_COLUMNS} are accepted",
            [field_error("data", "too many columns")],
        )


def _unsupported(name: str, dtype: object, where: str) -> ValidationFailed:
    message = (
        f"column '{name}' of {where} holds {dtype} values; a column must hold numbers, text, booleans "
        "or timestamps"
    )
    return ValidationFailed(message, [column_error(name, f"unsupported type {dtype}")])


def normalised(frame: pl.DataFrame, where: str) -> pl.DataFrame:
    """The frame with the types every source gives (see the module's docstring)."""
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
            raise _unsupported(series.name, dtype, where)
        columns.append(series)
    return pl.DataFrame(columns)


def _scalar_arrow_type(dtype: pa.DataType) -> bool:
    t = pa.types
    if t.is_dictionary(dtype):
        return _scalar_arrow_type(dtype.value_type)
    return bool(
        t.is_null(dtype)
        or t.is_boolean(dtype)
        or t.is_integer(dtype)
        or t.is_floating(dtype)
        or t.is_decimal(dtype)
        or t.is_string(dtype)
        or t.is_large_string(dtype)
        or t.is_string_view(dtype)
        or t.is_date(dtype)
        or t.is_timestamp(dtype)
        or t.is_time(dtype)
        or t.is_duration(dtype)
    )


def frame_from_arrow(table: pa.Table, where: str) -> pl.DataFrame:
    """An Arrow table as the normalised polars frame. Types polars cannot take (or takes badly:
    a wide decimal makes it panic) are refused or cast here, before it sees them."""
    check_width(table.num_columns, where)
    for index, item in enumerate(table.schema):
        if not _scalar_arrow_type(item.type):
            raise _unsupported(item.name, item.type, where)
        if pa.types.is_decimal(item.type) or pa.types.is_float16(item.type):
            wider = pa.float64() if pa.types.is_decimal(item.type) else pa.float32()
            table = table.set_column(index, item.name, table.column(index).cast(wider))
    if len(set(table.column_names)) != table.num_columns:
        raise ValidationFailed(
            f"{where} has two columns of one name", [field_error("data", "duplicate column names")]
        )
    try:
        frame = pl.from_arrow(table)
    except (pl.exceptions.PolarsError, pa.ArrowException) as error:
        raise ReadFailure(first_line(error)) from None
    assert isinstance(frame, pl.DataFrame)
    return normalised(frame, where)


def arrow_stream_frame(content: bytes | bytearray, max_rows: int, where: str) -> pl.DataFrame:
    """An Arrow IPC stream, read batch by batch so that more rows than `max_rows` are refused
    without reading the rest. Its buffers stay in `content`'s memory (no copy), and each batch is
    fully validated first: the bytes come from the network, and a bad offset must be a 400, not a
    read past the buffer."""
    if content.startswith(_ARROW_FILE_MAGIC):
        # Named for the caller's Arrow library, not ours: its stream writer ("stream" in Arrow JS).
        raise ReadFailure(
            "this is the Arrow IPC file format; send the IPC stream format (the stream writer of the "
            "Arrow library, pyarrow.ipc.new_stream, or 'stream' as the format in Arrow JS)"
        )
    batches: list[pa.RecordBatch] = []
    rows = 0
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(content))
        check_width(len(reader.schema), where)
        for batch in reader:
            rows += batch.num_rows
            if rows > max_rows:
                raise _too_many_rows(where, None, max_rows)
            batch.validate(full=True)
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except (pa.ArrowException, OSError) as error:
        raise ReadFailure(first_line(error)) from None
    return frame_from_arrow(table, where)


def parquet_frame(source: str | bytes | bytearray, max_rows: int, where: str) -> pl.DataFrame:
    """A Parquet file (a path, or the bytes of one). Its row count comes from the footer, so an
    oversized file is refused before any column is decoded."""
    try:
        parquet = pq.ParquetFile(source if isinstance(source, str) else pa.BufferReader(source))
        if parquet.metadata.num_rows > max_rows:
            raise _too_many_rows(where, parquet.metadata.num_rows, max_rows)
        check_width(len(parquet.schema_arrow), where)
        table = parquet.read()
    except (pa.ArrowException, OSError) as error:
        raise ReadFailure(first_line(error)) from None
    return frame_from_arrow(table, where)
