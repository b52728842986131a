"""The contact-policy request: which columns hold what, which interaction types count as what, and
the caps, bands and significance level of the analysis. Its defaults and ranges are declared here
once; the contract is held to them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.data import ColumnKind
from domain.errors import ValidationFailed, field_error
from domain.specs import bound_problems, bounded

# The seed must fit the contract's 32-bit signed integer (numpy alone would take up to 2**32 - 1).
MAX_RANDOM_STATE = 2**31 - 1
MAX_LOOKBACK_DAYS = 3650
# Contacts of one customer: a cap above these is no cap (and band bounds are weekly counts).
MAX_DAILY, MAX_WEEKLY, MAX_MONTHLY = 1000, 7000, 31000
MAX_SAMPLES = 100_000_000
# The instants the analysis reads and reports, in epoch seconds: 0001-01-01T00:00:00Z up to (not
# including) 10000-01-01T00:00:00Z, the calendar of ISO 8601's four-digit years and of the platform's
# dates. Timestamps outside it (year 0, 1e308 epoch seconds) are counted as unparseable and dropped;
# `as_of` outside it is refused.
EARLIEST_INSTANT = -62_135_596_800.0
END_OF_CALENDAR = 253_402_300_800.0
# The column roles as one group, for the error that two roles name the same column.
COLUMN_ROLES = "field_map"
VALUE_ROLES = ("impression_values", "click_values", "conversion_values")


@dataclass(frozen=True)
class ContactCaps:
    """The platform's configured contact caps: recommendations never exceed them."""

    daily: int = bounded(3, minimum=1, maximum=MAX_DAILY)
    weekly: int = bounded(10, minimum=1, maximum=MAX_WEEKLY)
    monthly: int = bounded(30, minimum=1, maximum=MAX_MONTHLY)


@dataclass(frozen=True)
class PolicySpec:
    """A contact-policy analysis request. Column fields name the data's columns."""

    customer_id: str = "customerId"
    channel: str = "channel"
    timestamp: str = "timestamp"
    interaction_type: str = "interactionType"
    offer_id: str | None = None
    # Matched case-insensitively after trimming; other values are counted as unknown and ignored.
    impression_values: tuple[str, ...] = ("impression",)
    click_values: tuple[str, ...] = ("click",)
    conversion_values: tuple[str, ...] = ("conversion", "convert", "accept")
    lookback_days: int = bounded(90, minimum=1, maximum=MAX_LOOKBACK_DAYS)
    # End of the lookback window (epoch seconds); None = the newest timestamp in the data.
    as_of: float | None = None
    caps: ContactCaps = field(default_factory=ContactCaps)
    # Upper bounds of the weekly-frequency bands: (1, 3, 5) means 1, 2-3, 4-5 and 6+ contacts a week.
    bands: tuple[int, ...] = (1, 3, 5, 7, 10)
    min_samples_per_band: int = bounded(30, minimum=1, maximum=MAX_SAMPLES)
    random_state: int = bounded(42, minimum=0, maximum=MAX_RANDOM_STATE)
    # Family-wise significance level of the fatigue and cooldown tests (Bonferroni-corrected).
    alpha: float = bounded(0.05, exclusive_minimum=0, exclusive_maximum=1)


def in_calendar(seconds: float) -> bool:
    """Whether an instant (epoch seconds) lies in the calendar the analysis reads and reports."""
    return math.isfinite(seconds) and EARLIEST_INSTANT <= seconds < END_OF_CALENDAR


def mapped_columns(spec: PolicySpec) -> dict[str, str]:
    """The spec's column roles (attribute name -> data column), the optional offer id included when set."""
    columns = {
        "customer_id": spec.customer_id,
        "channel": spec.channel,
        "timestamp": spec.timestamp,
        "interaction_type": spec.interaction_type,
    }
    if spec.offer_id is not None:
        columns["offer_id"] = spec.offer_id
    return columns


def normalise_value(value: str) -> str:
    """How interaction types are compared: trimmed and case-insensitive."""
    return value.strip().lower()


def validate_policy_spec(spec: PolicySpec, schema: Mapping[str, ColumnKind]) -> None:
    """Raise ValidationFailed, naming every wrong field by its spec path, for what the request and
    schema alone show."""
    out_of_range = bound_problems(spec)

    def range_problems(*paths: str) -> list[dict[str, Any]]:
        return [problem for problem in out_of_range if problem["field"] in paths]

    errors = [*_column_problems(spec, schema), *_value_problems(spec), *range_problems("lookback_days")]
    if spec.as_of is not None and not in_calendar(spec.as_of):
        errors.append(
            field_error("as_of", "must fall within 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (in UTC)")
        )
    caps = spec.caps
    errors += range_problems("caps.daily", "caps.weekly", "caps.monthly")
    if caps.daily > caps.weekly:
        errors.append(field_error("caps.daily", f"daily cap {caps.daily} exceeds weekly cap {caps.weekly}"))
    if caps.weekly > caps.monthly:
        errors.append(
            field_error("caps.weekly", f"weekly cap {caps.weekly} exceeds monthly cap {caps.monthly}")
        )
    if not spec.bands:
        errors.append(field_error("bands", "must list at least one band"))
    elif spec.bands[0] < 1:
        errors.append(field_error("bands", "band bounds must be at least 1 contact a week"))
    elif spec.bands[-1] > MAX_WEEKLY:
        errors.append(field_error("bands", f"band bounds must be at most {MAX_WEEKLY} contacts a week"))
    elif any(b <= a for a, b in zip(spec.bands, spec.bands[1:], strict=False)):
        errors.append(field_error("bands", "band bounds must be strictly increasing"))
    errors += range_problems("min_samples_per_band", "random_state", "alpha")
    if errors:
        raise ValidationFailed("The contact-policy request is invalid.", errors)


def _column_problems(spec: PolicySpec, schema: Mapping[str, ColumnKind]) -> list[dict[str, Any]]:
    errors = []
    for role, column in mapped_columns(spec).items():
        if not column:
            errors.append(field_error(role, "must name a column"))
        elif column not in schema:
            errors.append(field_error(role, f"column {column!r} is not in the data"))
    if schema.get(spec.timestamp) is ColumnKind.BOOLEAN:
        errors.append(field_error("timestamp", f"column {spec.timestamp!r} is boolean, not a timestamp"))
    roles = [spec.customer_id, spec.channel, spec.timestamp, spec.interaction_type]
    if len(set(roles)) != len(roles):
        errors.append(
            field_error(
                COLUMN_ROLES,
                "`customer_id`, `channel`, `timestamp` and `interaction_type` must differ",
            )
        )
    return errors


def _value_problems(spec: PolicySpec) -> list[dict[str, Any]]:
    errors = []
    seen: dict[str, str] = {}
    for role in VALUE_ROLES:
        values: tuple[str, ...] = getattr(spec, role)
        cleaned = [normalise_value(v) for v in values]
        if not cleaned or any(not v for v in cleaned):
            errors.append(field_error(role, "must list at least one non-empty value"))
        for value in cleaned:
            other = seen.get(value)
            if other is not None and other != role:
                errors.append(field_error(role, f"value {value!r} is also listed in `{other}`"))
            seen.setdefault(value, role)
    return errors
