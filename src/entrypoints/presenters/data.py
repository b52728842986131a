"""The `data` of every request: the contract's three inline and table forms to a DataSpec."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.data import DataSpec, InlineColumns, InlineRows, TableRef
from entrypoints import contract as c


def _names(items: Sequence[Any] | None) -> tuple[str, ...] | None:
    if items is None:
        return None
    return tuple(getattr(item, "root", item) for item in items)


def data_spec(source: c.InlineRows | c.InlineColumns | c.TableData) -> DataSpec:
    if isinstance(source, c.InlineColumns):
        return InlineColumns(columns=source.columns)
    if isinstance(source, c.InlineRows):
        return InlineRows(rows=source.rows)
    return TableRef(
        table=source.table,
        columns=_names(source.columns),
        filters=dict(source.filters or {}),
        limit=source.limit,
    )


