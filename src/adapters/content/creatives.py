"""The data's creatives, read once into per-row arrays: why each row is left out of the model, the
per-channel totals, and each creative's rates as the result reports them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from domain.content.rates import ctr, cvr, rpi
from domain.content.result import ChannelSummary, CreativeFlag, CreativeStanding, ExclusionReason
from domain.content.spec import (
    MAX_COUNT,
    ContentSpec,
    out_of_range_values,
    target_denominator_field,
    target_numerator_field,
)
from domain.errors import ValidationFailed

NO_CHANNEL = "(none)"
# A target rate is measured over at least one trial (impression, or click for CVR). Fewer makes it
# undefined, as none does: a rate over 1e-320 clicks is no measurement, and its relative rate and
# precision weight would overflow.
MIN_TRIALS = 1.0


@dataclass(frozen=True)
class Creatives:
    ids: list[str | int | None]
    channels: np.ndarray  # of str
    impressions: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray
    revenue: np.ndarray  # 0 where unknown
    has_revenue: bool
    # The target rate's counts: clicks / impressions for CTR, conversions / clicks for CVR.
    numerator: np.ndarray
    denominator: np.ndarray

    @property
    def count(self) -> int:
        return len(self.ids)

    def id_of(self, row: int) -> str | int:
        """The id of a valid row (rows without an id are never valid)."""
        creative_id = self.ids[row]
        assert creative_id is not None
        return creative_id


def read_creatives(frame: pl.DataFrame, spec: ContentSpec, warnings: list[str]) -> Creatives:
    ids = frame[spec.id_field]
    # Ids are echoed back as sent when they are text or integers the result's JSON writer carries (64
    # bits, signed or not); anything else (floats, dates, a 128-bit integer from a binary body) as
    # text, so they stay hashable and JSON-able.
    if not (ids.dtype == pl.Utf8 or _json_integers(ids)):
        ids = ids.cast(pl.Utf8)
    channels = np.array(frame[spec.channel_field].cast(pl.Utf8).fill_null(NO_CHANNEL).to_list(), dtype=object)
    counts = {
        spec.impressions_field: _floats(frame, spec.impressions_field),
        spec.clicks_field: _floats(frame, spec.clicks_field),
        spec.conversions_field: _floats(frame, spec.conversions_field),
    }
    has_revenue = spec.revenue_field in frame.columns
    _check_ranges(frame, [*counts, *([spec.revenue_field] if has_revenue else [])])
    if has_revenue:
        revenue = _floats(frame, spec.revenue_field)
        missing_revenue = int(np.isnan(revenue).sum())
        if missing_revenue:
            warnings.append(f"{missing_revenue} creatives have no revenue value; counted as 0")
        revenue = np.nan_to_num(revenue, nan=0.0)
    else:
        revenue = np.zeros(frame.height)
    return Creatives(
        ids=ids.to_list(),
        channels=channels,
        impressions=counts[spec.impressions_field],
        clicks=counts[spec.clicks_field],
        conversions=counts[spec.conversions_field],
        revenue=revenue,
        has_revenue=has_revenue,
        numerator=counts[target_numerator_field(spec)],
        denominator=counts[target_denominator_field(spec)],
    )


def exclusion_reasons(
    creatives: Creatives, spec: ContentSpec, warnings: list[str]
) -> list[ExclusionReason | None]:
    """Why each row is left out of the model, the most basic reason winning; None = modelled (if its
    text yields a term, which the term counting decides)."""
    counts = np.column_stack([creatives.impressions, creatives.clicks, creatives.conversions])
    missing_id = np.array([value is None for value in creatives.ids])
    missing = np.isnan(counts).any(axis=1)
    with np.errstate(invalid="ignore"):
        negative = (counts < 0).any(axis=1)
        clicks_above = creatives.clicks > creatives.impressions
        below_min = creatives.impressions < spec.min_impressions
        # The target rate is undefined without a trial to measure it over (min_impressions may be 0).
        undefined = creatives.denominator < MIN_TRIALS
    conversions_above = int(np.sum(~missing & ~negative & (creatives.conversions > creatives.clicks)))
    if conversions_above:
        # Kept: view-through attribution and repeat purchases make more conversions than clicks
        # legitimate; a CVR above 1 is then reported as measured.
        warnings.append(f"{conversions_above} creatives have more conversions than clicks")
    reason: list[ExclusionReason | None] = [None] * creatives.count
    # Later rules overwrite earlier ones, so the list runs from the least to the most basic reason.
    no_denominator = ExclusionReason.NO_CLICKS if spec.target == "cvr" else ExclusionReason.NO_IMPRESSIONS
    for mask, name in (
        (undefined, no_denominator),
        (below_min, ExclusionReason.BELOW_MIN_IMPRESSIONS),
        (clicks_above, ExclusionReason.CLICKS_ABOVE_IMPRESSIONS),
        (negative, ExclusionReason.NEGATIVE_COUNTS),
        (missing, ExclusionReason.MISSING_COUNTS),
        (missing_id, ExclusionReason.MISSING_ID),
    ):
        for i in np.flatnonzero(mask):
            reason[i] = name
    valid_ids = [creatives.ids[i] for i, r in enumerate(reason) if r is None or not r.invalidates]
    duplicates = len(valid_ids) - len(set(valid_ids))
    if duplicates:
        warnings.append(f"{duplicates} creatives repeat an id already seen")
    return reason


def channel_summaries(creatives: Creatives, valid: np.ndarray) -> tuple[ChannelSummary, ...]:
    table = pl.DataFrame(
        {
            "channel": creatives.channels[valid].tolist(),
            "impressions": creatives.impressions[valid],
            "clicks": creatives.clicks[valid],
            "conversions": creatives.conversions[valid],
            "revenue": creatives.revenue[valid],
        }
    )
    grouped = (
        table.group_by("channel")
        .agg(pl.len().alias("creatives"), pl.col("impressions", "clicks", "conversions", "revenue").sum())
        .sort("channel")
    )
    summaries = []
    for row in grouped.iter_rows(named=True):
        revenue = float(row["revenue"]) if creatives.has_revenue else None
        summaries.append(
            ChannelSummary(
                channel=row["channel"],
                creatives=int(row["creatives"]),
                impressions=_count(row["impressions"]),
                clicks=_count(row["clicks"]),
                conversions=_count(row["conversions"]),
                revenue=revenue,
                ctr=ctr(float(row["clicks"]), float(row["impressions"])),
                cvr=cvr(float(row["conversions"]), float(row["clicks"])),
                rpi=rpi(revenue, float(row["impressions"])) if revenue is not None else None,
            )
        )
    return tuple(summaries)


def creative_standings(
    creatives: Creatives, valid: np.ndarray, percentile: np.ndarray, flags: list[list[CreativeFlag]]
) -> tuple[CreativeStanding, ...]:
    standings = []
    for i in np.flatnonzero(valid).tolist():
        impressions = float(creatives.impressions[i])
        clicks = float(creatives.clicks[i])
        standings.append(
            CreativeStanding(
                id=creatives.id_of(i),
                channel=str(creatives.channels[i]),
                ctr=ctr(clicks, impressions),
                cvr=cvr(float(creatives.conversions[i]), clicks),
                rpi=rpi(float(creatives.revenue[i]), impressions) if creatives.has_revenue else None,
                percentile_in_channel=None if math.isnan(percentile[i]) else float(percentile[i]),
                flags=tuple(flags[i]),
            )
        )
    return tuple(standings)


def _floats(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(np.float64, copy=True)


def _json_integers(values: pl.Series) -> bool:
    if not values.dtype.is_integer():
        return False
    low, high = values.min(), values.max()
    return low is None or bool(low >= -(2**63) and high < 2**64)  # type: ignore[operator]


def _check_ranges(frame: pl.DataFrame, names: list[str]) -> None:
    """Counts and revenue beyond ±MAX_COUNT (infinities included) are refused, naming the column;
    compared in the column's own type, since 2**53 + 1 is 2**53 as a double. NaN stays what it was:
    a missing value."""
    problems = []
    for name in dict.fromkeys(names):
        values = frame.get_column(name)
        beyond = _beyond_max_count(values)
        count = int(beyond.sum())
        if count:
            example = values.filter(beyond)[0]
            problems.append(out_of_range_values(name, count, float(example)))
    if problems:
        # A failed job shows its message only: it names the columns and the bound.
        named = ", ".join(repr(p["field"]) for p in problems)
        raise ValidationFailed(f"{named}: {problems[0]['message']}", problems)


def _beyond_max_count(values: pl.Series) -> pl.Series:
    if values.dtype.is_integer():
        # In 128 bits, where 2**53 + 1 and every 64-bit value are exact; wider values are beyond.
        wide = values.cast(pl.Int128, strict=False)
        return (wide.is_null() & values.is_not_null()) | (wide.abs() > MAX_COUNT)
    floats = values.cast(pl.Float64)
    # NaN (polars orders it above every number) and null are missing values, not out of range.
    return floats.is_not_nan() & (floats.abs() > MAX_COUNT)


def _count(value: float) -> int | float:
    """Counts print as integers when they are whole, as the caller sent them; a sum beyond 2**53 is
    no exact integer (nor one every JSON reader holds), so it stays a number."""
    value = float(value)
    return int(value) if value.is_integer() and abs(value) <= MAX_COUNT else value
