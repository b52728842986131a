"""Where a request's data comes from, and what the use cases may know about a loaded dataset.

The data itself lives in an adapter (a polars frame); the domain and the use cases only see its
schema, so they can validate field names and kinds without importing a data library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeVar

from domain.errors import InsufficientData, field_error

Scalar = str | int | float | bool | None


class ColumnKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    TEMPORAL = "temporal"


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


FileFormat = Literal["csv", "parquet"]


@dataclass(frozen=True)
class FileRef:
    """A CSV or Parquet file on this machine. Only the offline CLI builds one: the HTTP contract has
    no file form, so a caller of the API can never make the worker read its own disk."""

    path: str
    format: FileFormat | None = None  # None: from the file name's extension


EncodedFormat = Literal["arrow", "parquet"]


@dataclass(frozen=True)
class EncodedData:
    """Inline data still in a binary encoding (an Arrow IPC stream, a Parquet file): the request's
    body itself. Decoding it is the data source's work, so that it happens where the frame is built
    and never on the event loop."""

    content: bytes | bytearray = field(repr=False)
    format: EncodedFormat


DataSpec = InlineRows | InlineColumns | TableRef | FileRef | EncodedData


Frame = TypeVar("Frame", covariant=True)


class Dataset(Protocol[Frame]):
    """A loaded table. `frame` is the data in the form its source and its computations agree on
    (the container pairs them); use cases treat it as opaque and read only the schema."""

    @property
    def frame(self) -> Frame: ...

    @property
    def row_count(self) -> int: ...

    @property
    def schema(self) -> Mapping[str, ColumnKind]: ...

    def distinct_counts(self, columns: Sequence[str]) -> Mapping[str, int]:
        """Distinct non-null values per column: what a resource estimate needs of categoricals."""
        ...

    @property
    def computed_elsewhere(self) -> bool:
        """True when the rows are not in this process but are read and computed where they are (a
        cluster): this replica's memory budget then does not apply, the backend's own limits do.
        Implementations subclass the protocol explicitly, so this default holds for local data."""
        return False


def describe_spec(spec: DataSpec) -> dict[str, Any]:
    """A short, log-safe description of where data came from (never the data itself)."""
    if isinstance(spec, TableRef):
        return {"source": "table", "table": spec.table, "limit": spec.limit}
    if isinstance(spec, FileRef):
        return {"source": "file", "path": spec.path, "format": spec.format}
    if isinstance(spec, InlineColumns):
        return {"source": "columns", "columns": len(spec.columns)}
    if isinstance(spec, EncodedData):
        return {"source": spec.format, "bytes": len(spec.content)}
    return {"source": "rows", "rows": len(spec.rows)}


def require_rows(dataset: Dataset[Any]) -> None:
    """Empty data is its own mistake: say so, rather than report the first missing column."""
    if dataset.row_count == 0:
        raise InsufficientData("the data has no rows", [field_error("data", "no rows")])
