"""Step 1: the interaction log as clean events in the lookback window, and what was left out.

An event keeps the customer (as a 64-bit hash), its channel (an Enum), its time, its kind
(impression, click or conversion), its calendar week and whether that week lies wholly inside the
window; rows without a customer, a parseable time or a mapped interaction type are counted and
dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from adapters.policies.remarks import Remarks
from adapters.policies.timestamps import ParsedTimestamps, parse_timestamps
from domain.errors import InsufficientData, field_error
from domain.policies.result import InteractionCounts, PolicySummary, TimeSpan
from domain.policies.spec import EARLIEST_INSTANT, PolicySpec, normalise_value
from domain.progress import ProgressReporter

DAY = 86_400.0
WEEK = 7 * DAY
# 1970-01-01 was a Thursday: weeks start on Mondays, four days later.
MONDAY_OFFSET = 4 * DAY

IMPRESSION, CLICK, CONVERSION = 0, 1, 2
MISSING_VALUE_KEY = "(missing)"
MISSING_CHANNEL = "(none)"
OTHER_CHANNELS = "(other)"


@dataclass(frozen=True)
class Events:
    frame: pl.DataFrame  # key, channel, ts, kind, week, complete (and offer when mapped)
    # Counts of the log; the customer-week counts are filled in once the weeks are built.
    summary: PolicySummary
    # Channel name -> its Enum code in `frame`.
    channel_codes: Mapping[str, int]


def iso(seconds: float | None) -> str | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def prepare_events(
    frame: pl.DataFrame,
    spec: PolicySpec,
    remarks: Remarks,
    report: ProgressReporter,
    max_reported_values: int,
) -> Events:
    parsed = parse_timestamps(frame.get_column(spec.timestamp))
    report(0.1, "Classifying interactions")
    kind, unknown = _interaction_kinds(frame, spec)
    customer = pl.col(spec.customer_id)
    channel = pl.col(spec.channel).cast(pl.Utf8).fill_null(MISSING_CHANNEL)
    # Channels as an Enum: group-bys and comparisons run on small integers, not strings.
    names = frame.select(channel.unique()).to_series().sort().to_list()
    columns = [
        # A 64-bit hash as the customer key: grouping and sorting integers is several times
        # faster than strings. Collisions (~1e-8 for a million customers) would merge two histories.
        customer.hash(seed=0).alias("key"),
        channel.cast(pl.Enum(names)).alias("channel"),
        pl.col("__ts").alias("ts"),
        pl.col("__kind").alias("kind"),
    ]
    if spec.offer_id is not None:
        columns.append(pl.col(spec.offer_id).alias("offer"))
    valid = (
        frame.lazy()
        .with_columns(pl.lit(parsed.seconds).alias("__ts"), kind.alias("__kind"))
        .filter(customer.is_not_null() & pl.col("__ts").is_not_null() & pl.col("__kind").is_not_null())
        .select(columns)
        .collect()
    )
    missing_customer = frame.get_column(spec.customer_id).null_count()
    if spec.as_of is not None:
        end = float(spec.as_of)
    else:
        newest = valid.get_column("ts").max()
        if newest is None:
            raise _nothing_usable(frame, spec, parsed, unknown)
        end = float(newest)  # type: ignore[arg-type]
    end_day = math.ceil(end / DAY) * DAY
    # No window starts before the calendar does (year 1): no timestamp lies there (timestamps.py),
    # and a window start in year 0 could not be reported.
    start = max(end_day - spec.lookback_days * DAY, EARLIEST_INSTANT)
    week = ((pl.col("ts") - MONDAY_OFFSET) / WEEK).floor().cast(pl.Int32)
    week_start = week.cast(pl.Float64) * WEEK + MONDAY_OFFSET
    events = valid.filter((pl.col("ts") >= start) & (pl.col("ts") <= end)).with_columns(
        week.alias("week"),
        # Only whole weeks inside the window count for weekly frequency: a week cut by the
        # window's edge would look like a low-frequency week.
        ((week_start >= start) & (week_start + WEEK <= end_day)).alias("complete"),
    )
    if events.height == 0:
        raise InsufficientData(
            "No usable interactions fall in the lookback window.",
            [field_error("lookback_days", f"window {iso(start)} to {iso(end)} holds no usable rows")],
        )
    stats = events.select(
        pl.col("ts").min().alias("first"),
        pl.col("ts").max().alias("last"),
        pl.col("key").n_unique().alias("customers"),
        (pl.col("kind") == IMPRESSION).sum().alias("impressions"),
        (pl.col("kind") == CLICK).sum().alias("clicks"),
        (pl.col("kind") == CONVERSION).sum().alias("conversions"),
        *([pl.col("offer").drop_nulls().n_unique().alias("offers")] if spec.offer_id else []),
    ).row(0, named=True)
    if stats["impressions"] == 0:
        raise InsufficientData(
            "No impressions (contacts) in the lookback window: contact frequency cannot be measured.",
            [
                field_error(
                    "impression_values", f"no row has an interaction type in {list(spec.impression_values)}"
                )
            ],
        )
    unknown_total = sum(unknown.values())
    unknown_top = list(unknown.items())[:max_reported_values]
    summary = PolicySummary(
        rows=frame.height,
        rows_used=events.height,
        customers=int(stats["customers"]),
        customer_weeks=0,
        weeks=0,
        date_range=TimeSpan(float(stats["first"]), float(stats["last"])),
        window=TimeSpan(start, end),
        lookback_days=spec.lookback_days,
        interactions=InteractionCounts(
            int(stats["impressions"]), int(stats["clicks"]), int(stats["conversions"])
        ),
        unknown_interaction_types=tuple(unknown_top),
        unknown_interaction_rows=unknown_total,
        unparseable_timestamps=parsed.unparseable,
        missing_timestamps=parsed.missing,
        missing_customer_ids=missing_customer,
        timestamp_format=parsed.format,
        outside_lookback=valid.height - events.height,
        offers=int(stats["offers"]) if spec.offer_id else None,
        customer_weeks_without_contacts=0,
    )
    _row_warnings(summary, remarks)
    return Events(events, summary, {name: i for i, name in enumerate(names)})


def _interaction_kinds(frame: pl.DataFrame, spec: PolicySpec) -> tuple[pl.Expr, dict[str, int]]:
    """The kind of each row (impression, click, conversion or null) and the unknown values' counts.

    Interaction types have few distinct values: they are normalised once per value in Python,
    and the rows mapped with one vectorised replace.
    """
    kind_of = {
        **{normalise_value(v): CONVERSION for v in spec.conversion_values},
        **{normalise_value(v): CLICK for v in spec.click_values},
        **{normalise_value(v): IMPRESSION for v in spec.impression_values},
    }
    raw = pl.col(spec.interaction_type)
    dtype = frame.schema[spec.interaction_type]
    if dtype == pl.Categorical or isinstance(dtype, pl.Enum):
        raw = raw.cast(pl.Utf8)
    counts = frame.select(raw.alias("value")).group_by("value").agg(pl.len().alias("n"))
    mapping: dict[Any, int] = {}
    unknown: dict[str, int] = {}
    for value, n in counts.iter_rows():
        known = None if value is None else kind_of.get(normalise_value(str(value)))
        if known is None:
            label = MISSING_VALUE_KEY if value is None else normalise_value(str(value))
            unknown[label] = unknown.get(label, 0) + int(n)
        else:
            mapping[value] = known
    ordered = dict(sorted(unknown.items(), key=lambda item: (-item[1], item[0])))
    if not mapping:
        return pl.lit(None, pl.UInt8), ordered
    return raw.replace_strict(mapping, default=None, return_dtype=pl.UInt8), ordered


def _nothing_usable(
    frame: pl.DataFrame, spec: PolicySpec, parsed: ParsedTimestamps, unknown: Mapping[str, int]
) -> InsufficientData:
    details = []
    if parsed.unparseable + parsed.missing == frame.height:
        details.append(field_error("timestamp", f"no value of {spec.timestamp!r} is a timestamp"))
    seen = list(unknown)[:10]
    if seen:
        details.append(
            field_error("interaction_values", f"interaction types seen include {seen}; none is mapped")
        )
    return InsufficientData(
        "No row has a customer, a parseable timestamp and a mapped interaction type.", details
    )


def _row_warnings(summary: PolicySummary, remarks: Remarks) -> None:
    if summary.unparseable_timestamps:
        remarks.warnings.append(
            f"{summary.unparseable_timestamps:,} rows have timestamps that could not be parsed "
            "(ISO 8601 or epoch seconds/milliseconds expected, in years 1 to 9999); they were dropped."
        )
    if summary.missing_timestamps:
        remarks.warnings.append(f"{summary.missing_timestamps:,} rows have no timestamp; they were dropped.")
    if summary.missing_customer_ids:
        remarks.warnings.append(
            f"{summary.missing_customer_ids:,} rows have no customer id; they were dropped."
        )
    if summary.unknown_interaction_rows:
        top = ", ".join(f"{k!r} ({v:,})" for k, v in summary.unknown_interaction_types[:5])
        remarks.warnings.append(
            f"{summary.unknown_interaction_rows:,} rows have interaction types that are not mapped to "
            f"impression, click or conversion ({top}); they were ignored."
        )
