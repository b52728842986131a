"""Step 3: customer-weeks, the unit of weekly frequency: one row per customer and complete calendar
week with at least one contact, its frequency band and its per-channel counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from adapters.policies.events import CONVERSION, IMPRESSION, OTHER_CHANNELS
from adapters.policies.remarks import Remarks

# Odd multiplier (2^64 / golden ratio) mixing a customer hash and a week number into one key.
CUSTOMER_WEEK_MIX = 0x9E3779B97F4A7C15


@dataclass(frozen=True)
class CustomerWeeks:
    """`frame` columns: key, week, f (contacts), conv (conversions), y (attributed conversions),
    band, single_channel, only_channel (its channel code), ch{i}/cv{i} (contacts and conversions on
    the i-th model channel) and, when `strata` is set, sf{j}/sy{j} (contacts and attributed
    conversions of stratum j, the last one pooling the other channels)."""

    frame: pl.DataFrame
    strata: tuple[str, ...]
    # Customer-weeks with clicks or conversions but no contact: left out.
    without_contacts: int

    @property
    def calendar_weeks(self) -> int:
        return self.frame.get_column("week").n_unique() if self.frame.height else 0


def customer_weeks(
    events: pl.DataFrame, bands: Sequence[int], model_channels: Sequence[str], remarks: Remarks
) -> CustomerWeeks:
    impression = pl.col("kind") == IMPRESSION
    conversion = pl.col("kind") == CONVERSION
    per_channel = []
    for i, name in enumerate(model_channels):
        on_channel = pl.col("channel") == name
        per_channel.append((impression & on_channel).sum().cast(pl.Int64).alias(f"ch{i}"))
        per_channel.append((conversion & on_channel).sum().cast(pl.Int64).alias(f"cv{i}"))
    code = pl.col("channel").to_physical()
    weeks = (
        events.lazy()
        .filter(pl.col("complete"))
        # One 64-bit key per customer-week: grouping on one integer column is faster than on two.
        .with_columns((pl.col("key") * CUSTOMER_WEEK_MIX + pl.col("week").cast(pl.UInt64)).alias("cw"))
        .group_by("cw")
        .agg(
            pl.col("key").first(),
            pl.col("week").first(),
            impression.sum().cast(pl.Int64).alias("f"),
            conversion.sum().cast(pl.Int64).alias("conv"),
            # One channel iff the smallest and largest channel codes of the week's contacts agree.
            # when/then rather than filter inside the aggregation: it keeps polars on its
            # fast grouped-aggregation path.
            pl.when(impression).then(code).min().alias("first_code"),
            pl.when(impression).then(code).max().alias("last_code"),
            *per_channel,
        )
        .with_columns(
            (pl.col("first_code") == pl.col("last_code")).fill_null(False).alias("single_channel"),
            pl.col("first_code").alias("only_channel"),
        )
        .collect()
    )
    without_contacts = weeks.filter(pl.col("f") == 0).height
    weeks = weeks.filter(pl.col("f") > 0).with_columns(
        pl.min_horizontal("conv", "f").alias("y"),
        pl.sum_horizontal([(pl.col("f") > b).cast(pl.Int32) for b in bands]).alias("band"),
    )
    weeks, strata = _with_strata(weeks, model_channels, remarks)
    if weeks.height == 0:
        remarks.warnings.append(
            "No complete calendar week (Monday to Sunday, UTC) with contacts lies inside the lookback "
            "window: weekly frequency cannot be measured."
        )
    return CustomerWeeks(weeks, strata, without_contacts)


def _with_strata(
    weeks: pl.DataFrame, model_channels: Sequence[str], remarks: Remarks
) -> tuple[pl.DataFrame, tuple[str, ...]]:
    """Per-channel contacts sf{j} and attributed conversions sy{j} of each customer-week, for
    channel-adjusted fatigue tests; channels beyond the top ones are pooled as "(other)".

    The adjustment needs conversions labelled with the channels of the contacts. When most are
    not (e.g. all conversions logged on "web"), it is switched off rather than losing them.
    """
    if len(model_channels) < 2 or weeks.height == 0:
        return weeks, ()
    n = len(model_channels)
    columns = []
    for i in range(n):
        columns += [
            pl.col(f"ch{i}").alias(f"sf{i}"),
            pl.min_horizontal(f"cv{i}", f"ch{i}").alias(f"sy{i}"),
        ]
    other_f = pl.col("f") - pl.sum_horizontal([f"ch{i}" for i in range(n)])
    other_conv = pl.col("conv") - pl.sum_horizontal([f"cv{i}" for i in range(n)])
    columns += [other_f.alias(f"sf{n}"), pl.min_horizontal(other_conv, other_f).alias(f"sy{n}")]
    with_strata = weeks.with_columns(columns)
    totals = with_strata.select(
        pl.col("y").sum().alias("y"),
        pl.sum_horizontal([f"sy{j}" for j in range(n + 1)]).sum().alias("sy"),
    ).row(0, named=True)
    if totals["y"] and totals["sy"] < 0.8 * totals["y"]:
        remarks.notes.append(
            "Most conversions are not logged on the channel of a contact in the same week, so the "
            "fatigue test is not adjusted for channel mix."
        )
        return weeks, ()
    return with_strata, (*model_channels, OTHER_CHANNELS)
