"""Where a request's data comes from, and what the use cases may know about a loaded dataset.

The data itself lives in an adapter (a polars frame); the domain and the use cases only see its
schema, so they can validate field names and kinds without importing a data library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

Scalar = str | int | float | bool | None


class ColumnKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    TEMPORAL = "temporal"


# The platform's own rule: these field types are numeric, everything else is categorical.
PLATFORM_NUMERIC_TYPES = frozenset({"integer", "float", "decimal", "number", "bigint"})


@dataclass(frozen=True)
class InlineRows:
    rows: Sequence[Mapping[str, Scalar]]


@dataclass(frozen=True)
class InlineColumns:
    columns: Mapping[str, Sequence[Scalar]]


@dataclass(frozen=True)
class TableRef:
    """A table of the platform database: names are checked against the catalogue before use."""

    table: str
    columns: tuple[str, ...] | None = None
    filters: Mapping[str, Scalar | Sequence[Scalar]] = field(default_factory=dict)
    limit: int | None = None


DataSpec = InlineRows | InlineColumns | TableRef


class Dataset(Protocol):
    """A loaded table. Adapters wrap the real frame; use cases read only the schema."""

    @property
    def row_count(self) -> int: ...

    @property
    def schema(self) -> Mapping[str, ColumnKind]: ...


def describe_spec(spec: DataSpec) -> dict[str, Any]:
    """A short, log-safe description of where data came from (never the data itself)."""
    if isinstance(spec, TableRef):
        return {"source": "table", "table": spec.table, "limit": spec.limit}
    if isinstance(spec, InlineColumns):
        return {"source": "columns", "columns": len(spec.columns)}
    return {"source": "rows", "rows": len(spec.rows)}
