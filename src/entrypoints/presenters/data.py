"""The `data` of every request to a DataSpec: the contract's inline and table forms of a JSON body,
or a binary body (its media type says its encoding)."""

from __future__ import annotations

from domain.data import DataSpec, EncodedData, EncodedFormat, InlineColumns, InlineRows, TableRef
from entrypoints import contract as c
from entrypoints.presenters.wire import names

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
BINARY_MEDIA_TYPES: dict[str, EncodedFormat] = {ARROW_STREAM: "arrow", PARQUET: "parquet"}


def data_spec(source: c.InlineRows | c.InlineColumns | c.TableData) -> DataSpec:
    if isinstance(source, c.InlineColumns):
        return InlineColumns(columns=source.columns)
    if isinstance(source, c.InlineRows):
        return InlineRows(rows=source.rows)
    return TableRef(
        table=source.table,
        columns=names(source.columns),
        filters=dict(source.filters or {}),
        limit=source.limit,
    )


def encoded_data_spec(body: bytes | bytearray, media_type: str) -> EncodedData:
    return EncodedData(content=body, format=BINARY_MEDIA_TYPES[media_type])
