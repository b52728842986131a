"""The statistics the fatigue and cooldown decisions rest on: Wilson intervals, z-tests, and the
one-sided drop test both report alike."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

# 97.5% quantile of the standard normal: two-sided 95% intervals.
Z_95 = 1.959963984540054
# A drop must also matter in practice: with millions of rows a 2% dip is "significant" but does not
# justify cutting contacts. Fatigue and cooldown need at least this relative fall in conversion per
# contact, on top of statistical significance.
MIN_RELATIVE_DROP = 0.10

Alternative = Literal["two-sided", "less", "greater"]


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float


@dataclass(frozen=True)
class ZTest:
    z: float
    p_value: float


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def p_value(z: float, alternative: Alternative) -> float:
    if alternative == "less":
        return normal_sf(-z)
    if alternative == "greater":
        return normal_sf(z)
    return min(1.0, 2.0 * normal_sf(abs(z)))


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> Interval:
    """Wilson score interval of a proportion; (0, 1) without trials (nothing is known)."""
    if successes < 0 or trials < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return Interval(0.0, 1.0)
    p = successes / trials
    z2 = z * z
    denominator = 1.0 + z2 / trials
    centre = (p + z2 / (2.0 * trials)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / trials + z2 / (4.0 * trials * trials)) / denominator
    # At p = 0 or 1 the bound is exactly 0 or 1; rounding would leave it a hair off.
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(lower, upper)


def two_proportion_z_test(
    successes1: int, trials1: int, successes2: int, trials2: int, alternative: Alternative = "two-sided"
) -> ZTest:
    """Pooled two-proportion z-test of p1 vs p2; "less" tests p1 < p2. No variance: z 0, p 1."""
    if trials1 <= 0 or trials2 <= 0:
        raise ValueError("both groups need trials")
    p1 = successes1 / trials1
    p2 = successes2 / trials2
    pooled = (successes1 + successes2) / (trials1 + trials2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / trials1 + 1.0 / trials2))
    if se == 0.0:
        return ZTest(0.0, 1.0)
    z = (p1 - p2) / se
    return ZTest(z, p_value(z, alternative))


def relative_drop(reference_rate: float, rate: float) -> float:
    return (reference_rate - rate) / reference_rate if reference_rate > 0 else 0.0


@dataclass(frozen=True)
class DropTest:
    """A one-sided test that a rate is lower than in a reference group (a later frequency band, a
    shorter gap between contacts). Rates are channel-adjusted (weighted over the channels both sides
    share) when `stratified`."""

    z: float
    p_value: float
    reference_rate: float
    later_rate: float
    stratified: bool

    @property
    def relative_drop(self) -> float:
        return relative_drop(self.reference_rate, self.later_rate)


@dataclass(frozen=True)
class Significance:
    """What the fatigue and cooldown findings report alike about their deciding test (None-valued
    without one)."""

    relative_drop: float | None
    adjusted_for_channel_mix: bool
    z: float | None
    p_value: float | None
    alpha: float
    adjusted_alpha: float | None
    comparisons: int


def significance(
    test: DropTest | None, alpha: float, adjusted_alpha: float | None, comparisons: int
) -> Significance:
    return Significance(
        relative_drop=test.relative_drop if test else None,
        adjusted_for_channel_mix=test.stratified if test else False,
        z=test.z if test else None,
        p_value=test.p_value if test else None,
        alpha=alpha,
        adjusted_alpha=adjusted_alpha,
        comparisons=comparisons,
    )
