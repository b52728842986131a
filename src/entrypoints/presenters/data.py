"""The `data` of every request: the contract's three inline and table forms to a DataSpec."""

from __future__ import annotations

from domain.data import DataSpec, InlineColumns, InlineRows, TableRef
from entrypoints import contract as c
from entrypoints.presenters.wire import names


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


