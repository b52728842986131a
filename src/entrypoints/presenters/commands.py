"""Contract models (generated from openapi.yaml) to domain commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain.data import DataSpec, InlineColumns, InlineRows, TableRef
from entrypoints import contract as c

# cli.py still imports content_spec from here; it lives in presenters/content.py.
from entrypoints.presenters.content import content_spec as content_spec

# Until the CLI imports them from entrypoints.presenters.gbm (then delete these two lines).
from entrypoints.presenters.gbm import training_response as training_response
from entrypoints.presenters.gbm import training_spec as training_spec

# The CLI still reads it here; entrypoints.presenters.policies is its home.
from entrypoints.presenters.policies import policy_spec as policy_spec

# The CLI still maps its segment command through this module; it moves to
# entrypoints.presenters.segmentation with the CLI's split, and this re-export goes.
from entrypoints.presenters.segmentation import segmentation_spec as segmentation_spec


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


