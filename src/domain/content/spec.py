"""The content analysis request: which columns hold what, the target, and the settings, with their
defaults and bounds; and how a request is checked against the data's schema."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from domain.data import ColumnKind
from domain.errors import ValidationFailed, column_error, field_error
from domain.specs import bound_problems, bounded

Target = Literal["ctr", "cvr"]
TARGETS: tuple[Target, ...] = ("ctr", "cvr")
# The largest count or revenue accepted: 2**53, the last integer a double (and the platform's
# JavaScript number) holds exactly. Beyond it, and for infinities, a channel's sums and rates lose
# meaning: 400 creatives of 1e308 impressions sum to infinity and every rate to 0 or NaN.
MAX_COUNT = 2**53


@dataclass(frozen=True)
class ContentSpec:
    """A content analysis request. The `*_field` values are the data's column names."""

    id_field: str = "id"
    channel_field: str = "channel"
    # Fields absent from the data are skipped (with a warning); at least one must be present.
    text_fields: tuple[str, ...] = ("subject", "headline", "body", "ctaText")
    impressions_field: str = "impressions"
    clicks_field: str = "clicks"
    conversions_field: str = "conversions"
    # Optional: when the column is absent, revenue and RPI are reported as null.
    revenue_field: str = "revenue"
    target: Target = "ctr"
    # Past any real creative (1e12 impressions), and exact in the platform's JavaScript numbers.
    min_impressions: int = bounded(100, minimum=0, maximum=1_000_000_000_000)
    top_terms: int = bounded(20, minimum=1, maximum=200)
    # The forest's seed must fit numpy's RandomState (2**32 - 1); the contract allows less.
    random_state: int = bounded(42, minimum=0, maximum=2_147_483_647)


def target_denominator_field(spec: ContentSpec) -> str:
    """The count a target rate is taken over, which also sets each creative's weight."""
    return spec.impressions_field if spec.target == "ctr" else spec.clicks_field


def target_numerator_field(spec: ContentSpec) -> str:
    return spec.clicks_field if spec.target == "ctr" else spec.conversions_field


def out_of_range_values(column: str, count: int, example: float) -> dict[str, Any]:
    """The detail for a count or revenue column holding values beyond ±MAX_COUNT (or infinities)."""
    return column_error(
        column,
        f"{count} values beyond ±2**53 ({MAX_COUNT:,}), e.g. {example:.6g}; "
        "counts and revenue must be finite numbers within it",
    )


def present_text_fields(spec: ContentSpec, schema: Mapping[str, ColumnKind]) -> tuple[str, ...]:
    return tuple(name for name in spec.text_fields if name in schema)


def validate_content_spec(spec: ContentSpec, schema: Mapping[str, ColumnKind]) -> None:
    """Raise ValidationFailed listing every problem, each naming the spec field or the data's column."""
    errors: list[dict[str, Any]] = []
    if spec.target not in TARGETS:
        errors.append(field_error("target", f"must be one of {', '.join(TARGETS)}, got {spec.target!r}"))
    errors.extend(bound_problems(spec))
    errors.extend(_column_problems(spec, schema))
    errors.extend(_text_field_problems(spec, schema))
    if errors:
        raise ValidationFailed("the content analysis request does not fit the data", errors)


def _column_problems(spec: ContentSpec, schema: Mapping[str, ColumnKind]) -> list[dict[str, Any]]:
    errors = []
    for name in (spec.id_field, spec.channel_field):
        if name not in schema:
            errors.append(column_error(name, "column is missing from the data"))
    for name in (spec.impressions_field, spec.clicks_field, spec.conversions_field):
        if name not in schema:
            errors.append(column_error(name, "count column is missing from the data"))
        elif schema[name] is not ColumnKind.NUMERIC:
            errors.append(column_error(name, f"count column must be numeric, got {schema[name].value}"))
    revenue_kind = schema.get(spec.revenue_field)
    if revenue_kind is not None and revenue_kind is not ColumnKind.NUMERIC:
        errors.append(column_error(spec.revenue_field, f"revenue must be numeric, got {revenue_kind.value}"))
    return errors


def _text_field_problems(spec: ContentSpec, schema: Mapping[str, ColumnKind]) -> list[dict[str, Any]]:
    if not spec.text_fields:
        return [field_error("text_fields", "name at least one text field")]
    if len(set(spec.text_fields)) != len(spec.text_fields):
        return [field_error("text_fields", "text fields must not repeat")]
    present = present_text_fields(spec, schema)
    if not present:
        listed = ", ".join(spec.text_fields)
        return [field_error("text_fields", f"none of the text fields is in the data: {listed}")]
    return [
        column_error(name, f"text field must hold text, got {schema[name].value}")
        for name in present
        if schema[name] is not ColumnKind.CATEGORICAL
    ]
