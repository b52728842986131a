"""Names: what a `table` request may name, and what PostgreSQL's catalogue says those names are.

Nothing the request contains is ever spliced into SQL. The names are first checked without the
database (a name longer than PostgreSQL's 63-byte limit or containing NUL cannot exist; a schema must
be allowed), then looked up in `information_schema` as bound parameters, compared exactly
(case-sensitive) as text; statements are built from the catalogue's own names, each quoted.
Error fields are the DataSpec's paths: `data.table`, `data.columns[i]`, `data.filters.<name>`,
`data.limit`, as clients have always seen them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.data import TableRef
from domain.errors import ValidationFailed, field_error

# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes: a longer name cannot be in the catalogue.
_MAX_NAME_BYTES = 63
# Names echoed in error messages are cut, so a 10,000-character name does not come back whole.
SHOWN_NAME_CHARS = 80

INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
FLOAT_TYPES = frozenset({"numeric", "real", "double precision"})

_CATALOGUE_SQL = """
SELECT t.table_schema::text AS table_schema,
       t.table_name::text AS table_name,
       c.column_name::text AS column_name,
       c.data_type::text AS data_type,
       c.udt_schema::text AS udt_schema,
       c.udt_name::text AS udt_name,
       k.reltuples AS estimated_rows,
       k.relkind AS relation_kind,
       k.pages AS pages,
       current_setting('server_version_num')::int >= 140000 AND NOT pg_catalog.pg_is_in_recovery()
         AS split_reads
FROM information_schema.tables AS t
LEFT JOIN information_schema.columns AS c
  ON c.table_schema = t.table_schema AND c.table_name = t.table_name
LEFT JOIN LATERAL (
  SELECT r.reltuples, r.relkind::text AS relkind,
         pg_catalog.pg_relation_size(r.oid) / current_setting('block_size')::bigint AS pages
    FROM pg_catalog.pg_class AS r JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
   WHERE n.nspname = t.table_schema::text AND r.relname = t.table_name::text) AS k ON true
WHERE t.table_schema::text = ANY($1::text[]) AND t.table_name::text = $2::text
ORDER BY array_position($1::text[], t.table_schema::text), c.ordinal_position
"""


def quote_identifier(name: str) -> str:
    """An identifier as PostgreSQL's quote_ident writes it (always quoted): only for catalogue names."""
    return '"' + name.replace('"', '""') + '"'


def shown(name: str) -> str:
    return repr(name if len(name) <= SHOWN_NAME_CHARS else name[:SHOWN_NAME_CHARS] + "...")


def filter_field(name: str) -> str:
    return f"data.filters.{name[:SHOWN_NAME_CHARS]}"


@dataclass(frozen=True)
class CatalogueColumn:
    name: str
    data_type: str
    udt_schema: str
    udt_name: str

    @property
    def sql(self) -> str:
        return quote_identifier(self.name)

    @property
    def sql_type(self) -> str:
        # The column's own type (for a domain, its base type), so a cast behaves like a comparison in SQL.
        return f"{quote_identifier(self.udt_schema)}.{quote_identifier(self.udt_name)}"


@dataclass(frozen=True)
class CatalogueTable:
    schema: str
    name: str
    columns: Mapping[str, CatalogueColumn]
    # The planner's estimate (pg_class.reltuples): -1 or 0 when unknown, e.g. never analysed or a view.
    estimated_rows: float
    # pg_class.relkind ("r" a table, "v" a view, "m" a materialised view, "p" partitioned, ...) and
    # the pages the relation has now: what a read split by page ranges needs to know.
    kind: str = ""
    pages: int = 0
    # A read split by page ranges needs TID range scans (PostgreSQL 14; before, each part would scan
    # everything) and an exported snapshot, which a standby (in recovery) cannot export.
    split_reads: bool = False

    @property
    def sql(self) -> str:
        return f"{quote_identifier(self.schema)}.{quote_identifier(self.name)}"


@dataclass(frozen=True)
class TableRequest:
    """A `TableRef` whose names could exist and whose schema is allowed."""

    schema: str | None
    table: str
    columns: tuple[str, ...] | None
    filters: Mapping[str, Any]
    limit: int | None


def checked_request(spec: TableRef, allowed_schemas: Sequence[str]) -> TableRequest:
    """The checks that need no database."""
    table = _checked_name(spec.table, "data.table", "table")
    schema: str | None = None
    if "." in table:
        schema, table = table.split(".", 1)
        if schema not in allowed_schemas:
            raise ValidationFailed(
                f"schema {shown(schema)} is not readable; allowed: {', '.join(allowed_schemas)}",
                [field_error("data.table", f"schema {shown(schema)} is not allowed")],
            )
        if not table:
            raise ValidationFailed("the table name is empty", [field_error("data.table", "empty name")])
    columns: tuple[str, ...] | None = None
    if spec.columns is not None:
        if len(spec.columns) == 0:
            raise ValidationFailed(
                "columns must name at least one column (omit it for all columns)",
                [field_error("data.columns", "empty list")],
            )
        columns = tuple(
            _checked_name(name, f"data.columns[{i}]", "column") for i, name in enumerate(spec.columns)
        )
        duplicates = sorted({name for name in columns if columns.count(name) > 1})
        if duplicates:
            raise ValidationFailed(
                f"column {shown(duplicates[0])} is listed more than once",
                [field_error("data.columns", f"duplicate column {shown(name)}") for name in duplicates],
            )
    for key in spec.filters:
        _checked_name(key, filter_field(key), "filter column")
    limit = spec.limit
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationFailed(
            "limit must be a positive integer", [field_error("data.limit", "must be a positive integer")]
        )
    return TableRequest(schema, table, columns, dict(spec.filters), limit)


def catalogue_query(request: TableRequest, allowed_schemas: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    """The lookup of the table the request names, with its parameters (`$1` schemas, `$2` name)."""
    schemas = [request.schema] if request.schema is not None else list(allowed_schemas)
    return _CATALOGUE_SQL, (schemas, request.table)


def catalogue_table(
    rows: Sequence[Mapping[str, Any]], request: TableRequest, allowed_schemas: Sequence[str]
) -> CatalogueTable:
    """The table the request names, from the first allowed schema that has it (the lookup's rows)."""
    if not rows:
        raise unknown_table(request, allowed_schemas)
    schema = rows[0]["table_schema"]
    columns = {
        row["column_name"]: CatalogueColumn(
            row["column_name"], row["data_type"], row["udt_schema"], row["udt_name"]
        )
        for row in rows
        if row["table_schema"] == schema and row["column_name"] is not None
    }
    first = rows[0]
    estimate = first["estimated_rows"]
    return CatalogueTable(
        schema,
        first["table_name"],
        columns,
        -1.0 if estimate is None else float(estimate),
        kind=first.get("relation_kind") or "",
        pages=int(first.get("pages") or 0),
        split_reads=bool(first.get("split_reads")),
    )


def unknown_table(request: TableRequest, allowed_schemas: Sequence[str]) -> ValidationFailed:
    """The answer for a table that is missing, or not readable (access.py): the same words, so a
    caller cannot tell the two apart."""
    named = request.table if request.schema is None else f"{request.schema}.{request.table}"
    where = request.schema or " or ".join(allowed_schemas)
    return ValidationFailed(
        f"unknown table {shown(named)}",
        [field_error("data.table", f"no table {shown(named)} in schema {where}")],
    )


def selected_columns(table: CatalogueTable, request: TableRequest) -> list[CatalogueColumn]:
    """The columns to read, in the request's order; every name the request uses must exist."""
    unknown = [
        field_error(f"data.columns[{i}]", f"unknown column {shown(name)} in table {shown(table.name)}")
        for i, name in enumerate(request.columns or ())
        if name not in table.columns
    ]
    unknown += [
        field_error(filter_field(name), f"unknown column {shown(name)} in table {shown(table.name)}")
        for name in request.filters
        if name not in table.columns
    ]
    if unknown:
        raise ValidationFailed(unknown[0]["message"], unknown)
    if request.columns is None:
        return list(table.columns.values())
    return [table.columns[name] for name in request.columns]


def _checked_name(name: object, field: str, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationFailed(
            f"the {what} name must be a non-empty string", [field_error(field, "empty name")]
        )
    if "\x00" in name or len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        raise ValidationFailed(
            f"unknown {what} {shown(name)}",
            [field_error(field, f"no such {what}: PostgreSQL names are at most 63 bytes, without NUL")],
        )
    return name
