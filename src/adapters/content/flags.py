"""Each creative's standing in its channel: the percentile of its target rate, and flags from a
one-sided binomial test against the rest of the channel, corrected for testing thousands at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import binom

from domain.content.result import CreativeFlag

# Benjamini-Hochberg false discovery rate for the under/top performer flags: thousands of creatives
# are tested at once, so a plain 5% level would flag 5% of perfectly ordinary ones.
FLAG_FDR = 0.05


@dataclass(frozen=True)
class ChannelStanding:
    percentile: np.ndarray  # per row; NaN where the rate is not well measured
    flags: list[list[CreativeFlag]]  # per row
    # Row indices of the creatives significantly below their channel, by channel.
    underperformers: dict[str, list[int]]


def channel_standing(
    channels: np.ndarray,
    numerator: np.ndarray,
    denominator: np.ndarray,
    low_volume: np.ndarray,
    eligible: np.ndarray,
) -> ChannelStanding:
    """`low_volume` rows are flagged as such; `eligible` rows (a defined, well-measured target) get a
    percentile (the midpoint rank within the channel) and, where the rest of the channel has trials,
    the under/top performer test against its leave-one-out rate."""
    n = len(channels)
    flags: list[list[CreativeFlag]] = [[] for _ in range(n)]
    for i in np.flatnonzero(low_volume):
        flags[i].append(CreativeFlag.LOW_VOLUME)
    percentile = np.full(n, np.nan)
    rows = np.flatnonzero(eligible)
    underperformers: dict[str, list[int]] = {}
    if len(rows) == 0:
        return ChannelStanding(percentile, flags, underperformers)

    num = numerator[rows]
    den = denominator[rows]
    rate = num / den
    frame = pl.DataFrame({"channel": channels[rows].tolist(), "rate": rate, "num": num, "den": den})
    # Midpoint percentile rank: the share of the channel below, plus half the ties, in percent.
    below_and_half_ties = pl.col("rate").rank("average").over("channel") - 0.5
    standing = frame.select(
        (below_and_half_ties / pl.len().over("channel") * 100).alias("pct"),
        pl.col("num").sum().over("channel").alias("channel_num"),
        pl.col("den").sum().over("channel").alias("channel_den"),
    )
    percentile[rows] = standing["pct"].to_numpy()

    rest_num = standing["channel_num"].to_numpy() - num
    rest_den = standing["channel_den"].to_numpy() - den
    testable = rest_den > 0
    trials = np.rint(den[testable])
    # A binomial count cannot exceed its trials; CVR above 1 (more conversions than clicks) is
    # tested as a full conversion.
    successes = np.minimum(np.rint(num[testable]), trials)
    p_rest = np.clip(rest_num[testable] / rest_den[testable], 0.0, 1.0)
    p_low = binom.cdf(successes, trials, p_rest)
    p_high = binom.sf(successes - 1, trials, p_rest)
    significant = benjamini_hochberg(np.concatenate([p_low, p_high]), FLAG_FDR)
    low, high = significant[: len(p_low)], significant[len(p_low) :]
    tested = rows[testable]
    for i in tested[low]:
        flags[i].append(CreativeFlag.UNDERPERFORMER)
        underperformers.setdefault(str(channels[i]), []).append(int(i))
    for i in tested[high]:
        flags[i].append(CreativeFlag.TOP_PERFORMER)
    return ChannelStanding(percentile, flags, underperformers)


def benjamini_hochberg(p_values: np.ndarray, q: float) -> np.ndarray:
    """Which p-values are significant at false discovery rate `q`."""
    m = len(p_values)
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p_values, kind="stable")
    thresholds = q * np.arange(1, m + 1) / m
    passed = p_values[order] <= thresholds
    significant = np.zeros(m, dtype=bool)
    if passed.any():
        cutoff = np.max(np.flatnonzero(passed))
        significant[order[: cutoff + 1]] = True
    return significant
