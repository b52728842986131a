"""Which tables a `table` request may read, decided before and after the catalogue lookup.

- Before: the table name must match the configured pattern (default `^ds_`, the platform's dataset
  tables) and must not be one of the job store's tables, whatever the pattern says (the jobs table
  holds every tenant's results, its payloads table every tenant's inputs). A refused name gets
  exactly the answer of a missing table, so the worker cannot be used to learn which tables exist;
  the check runs no SQL.
- After: a table that has the tenant column (`tenantId`) is read only with a filter on it, so a
  caller that forgot the filter cannot read, and mix, every tenant's rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from adapters.postgres.catalogue import CatalogueTable, TableRequest, filter_field, shown, unknown_table
from adapters.postgres.job_table import DEFAULT_JOB_TABLE, payload_table
from domain.errors import ValidationFailed, field_error

TENANT_COLUMN = "tenantId"


@dataclass(frozen=True)
class TableAccess:
    allowed_schemas: tuple[str, ...]
    # re.search over the bare table name (without its schema).
    pattern: re.Pattern[str] = re.compile("^ds_")
    hidden_tables: frozenset[str] = frozenset({DEFAULT_JOB_TABLE, payload_table(DEFAULT_JOB_TABLE)})
    # None turns the tenant rule off (ML_WORKER_REQUIRE_TENANT_FILTER=false).
    tenant_column: str | None = TENANT_COLUMN

    def check_name(self, request: TableRequest) -> None:
        if request.table in self.hidden_tables or self.pattern.search(request.table) is None:
            raise unknown_table(request, self.allowed_schemas)

    def check_table(self, table: CatalogueTable, request: TableRequest) -> None:
        column = self.tenant_column
        if column is None or column not in table.columns or column in request.filters:
            return
        message = (
            f"table {shown(table.name)} is tenant-scoped (it has a {shown(column)} column): "
            f"a filter on {shown(column)} is required"
        )
        raise ValidationFailed(message, [field_error(filter_field(column), message)])


def table_access(
    allowed_schemas: Sequence[str],
    *,
    pattern: str = "^ds_",
    hidden_tables: Sequence[str] = (),
    require_tenant_filter: bool = True,
) -> TableAccess:
    # A hidden table is a job store's table (the container names the configured one): its
    # payloads table, beside it, is hidden with it.
    named = {DEFAULT_JOB_TABLE, *hidden_tables}
    return TableAccess(
        tuple(allowed_schemas),
        re.compile(pattern),
        frozenset({*named, *(payload_table(name) for name in named)}),
        TENANT_COLUMN if require_tenant_filter else None,
    )
