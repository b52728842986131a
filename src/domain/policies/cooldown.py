"""Cooldown: the shortest gap between two contacts below which contacts convert significantly worse."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from domain.policies.statistics import (
    MIN_RELATIVE_DROP,
    DropTest,
    Interval,
    Significance,
    p_value,
    significance,
    two_proportion_z_test,
    wilson_interval,
)

# Cooldown candidates (days): a gap bucket's upper edge becomes the cooldown. Below a day the daily
# cap already governs spacing.
COOLDOWN_EDGES_DAYS: tuple[int, ...] = (1, 2, 3, 5, 7)

COOLDOWN_METHOD = (
    "Each contact after a customer's first is bucketed by the time since the previous contact and "
    "counts as converted when a conversion follows it before the next contact and within "
    "{attribution} days (last-touch). Walking from the longest gaps to the shortest, each bucket is "
    "compared with all longer gaps pooled (one-sided z-test adjusted for channel mix, "
    "Bonferroni-corrected alpha, at least "
    f"{MIN_RELATIVE_DROP:.0%} lower). The cooldown is the upper edge of the first bucket that "
    "converts significantly worse."
)


@dataclass(frozen=True)
class GapBucketStats:
    """Contacts whose gap since the previous contact is in [lower_days, upper_days)."""

    lower_days: float
    upper_days: float | None
    contacts: int
    conversions: int
    # The same counts per channel of the contact, for channel-adjusted tests.
    strata: tuple[tuple[str, GapBucketStats], ...] = ()

    @property
    def label(self) -> str:
        if self.upper_days is None:
            return f">={_fmt_days(self.lower_days)}d"
        return f"{_fmt_days(self.lower_days)}-{_fmt_days(self.upper_days)}d"

    @property
    def rate(self) -> float:
        return self.conversions / self.contacts if self.contacts else 0.0

    def summary(self, min_samples: int) -> GapSummary:
        return GapSummary(
            label=self.label,
            min_days=self.lower_days,
            max_days=self.upper_days,
            contacts=self.contacts,
            conversions=self.conversions,
            conversion_rate=self.rate,
            conversion_rate_ci=wilson_interval(self.conversions, self.contacts),
            sufficient=self.contacts >= min_samples,
        )


def pool_gap_buckets(buckets: Sequence[GapBucketStats]) -> GapBucketStats:
    """Adjacent buckets as one (counts add up, channel by channel)."""
    by_channel: dict[str, list[GapBucketStats]] = {}
    for b in buckets:
        for name, stratum in b.strata:
            by_channel.setdefault(name, []).append(stratum)
    lowers = [b.lower_days for b in buckets]
    uppers = [b.upper_days for b in buckets]
    return GapBucketStats(
        lower_days=min(lowers),
        upper_days=None if any(u is None for u in uppers) else max(u for u in uppers if u is not None),
        contacts=sum(b.contacts for b in buckets),
        conversions=sum(b.conversions for b in buckets),
        strata=tuple((name, pool_gap_buckets(group)) for name, group in sorted(by_channel.items())),
    )


@dataclass(frozen=True)
class GapSummary:
    """One gap bucket as the result reports it."""

    label: str
    min_days: float
    max_days: float | None
    contacts: int
    conversions: int
    conversion_rate: float
    conversion_rate_ci: Interval
    # Enough contacts (min_samples_per_band) to take part in the cooldown test.
    sufficient: bool


def gap_drop_test(reference: GapBucketStats, shorter: GapBucketStats) -> DropTest:
    """One-sided test that contacts in `shorter` convert less than in `reference`.

    With channel strata on both sides: the Mantel-Haenszel-weighted mean of per-channel differences
    (unpooled binomial variances), so gaps that are merely richer in a weak channel do not look
    worse. Without: the pooled two-proportion z-test.
    """
    ref_strata = dict(reference.strata)
    common = [
        (ref_strata[name], stratum)
        for name, stratum in shorter.strata
        if name in ref_strata and stratum.contacts > 0 and ref_strata[name].contacts > 0
    ]
    if not common:
        test = two_proportion_z_test(
            shorter.conversions, shorter.contacts, reference.conversions, reference.contacts, "less"
        )
        return DropTest(test.z, test.p_value, reference.rate, shorter.rate, False)
    weights = [r.contacts * s.contacts / (r.contacts + s.contacts) for r, s in common]
    total = sum(weights)
    ref_rate = sum(w * r.rate for w, (r, _) in zip(weights, common, strict=True)) / total
    short_rate = sum(w * s.rate for w, (_, s) in zip(weights, common, strict=True)) / total
    variance = sum(
        w * w * (r.rate * (1 - r.rate) / r.contacts + s.rate * (1 - s.rate) / s.contacts)
        for w, (r, s) in zip(weights, common, strict=True)
    ) / (total * total)
    if variance <= 0.0:
        return DropTest(0.0, 1.0, ref_rate, short_rate, True)
    z = (short_rate - ref_rate) / math.sqrt(variance)
    return DropTest(z, p_value(z, "less"), ref_rate, short_rate, True)


def _fmt_days(days: float) -> str:
    return str(int(days)) if float(days).is_integer() else f"{days:g}"


def gap_bucket_edges() -> list[tuple[float, float | None]]:
    """[0, 1), [1, 2), ... [7, inf) days: the buckets whose upper edges are the cooldown candidates."""
    lowers = (0, *COOLDOWN_EDGES_DAYS)
    uppers: tuple[int | None, ...] = (*COOLDOWN_EDGES_DAYS, None)
    return [(float(lo), None if up is None else float(up)) for lo, up in zip(lowers, uppers, strict=True)]


@dataclass(frozen=True)
class CooldownResult:
    testable: bool
    days: int | None
    alpha: float
    adjusted_alpha: float | None
    comparisons: int
    attribution_days: int
    short: GapBucketStats | None = None
    reference: GapBucketStats | None = None
    test: DropTest | None = None
    reason: str = ""

    def finding(
        self, buckets: Sequence[GapBucketStats], min_samples: int, max_weekly_contacts: int | None
    ) -> CooldownFinding:
        return CooldownFinding(
            testable=self.testable,
            recommended_days=self.days,
            gaps=tuple(b.summary(min_samples) for b in buckets),
            short_gap=self.short.label if self.short else None,
            reference_gap=self.reference.label if self.reference else None,
            significance=significance(self.test, self.alpha, self.adjusted_alpha, self.comparisons),
            attribution_days=self.attribution_days,
            method=COOLDOWN_METHOD.format(attribution=self.attribution_days),
            reason=self.reason,
            max_weekly_contacts=max_weekly_contacts,
        )


@dataclass(frozen=True)
class CooldownFinding:
    """What the result reports of the cooldown test."""

    testable: bool
    recommended_days: int | None
    gaps: tuple[GapSummary, ...]
    short_gap: str | None
    reference_gap: str | None
    significance: Significance
    attribution_days: int
    method: str
    reason: str
    # The test ran on the contacts of customer-weeks with at most this many contacts (None: all).
    max_weekly_contacts: int | None


def detect_cooldown(
    buckets: Sequence[GapBucketStats], *, alpha: float, min_samples: int, attribution_days: int
) -> CooldownResult:
    """The shortest safe gap between contacts (see COOLDOWN_METHOD); days None when none is shown."""
    eligible = [b for b in buckets if b.contacts >= min_samples]
    if len(eligible) < 2 or sum(b.conversions for b in eligible) == 0:
        return CooldownResult(
            testable=False,
            days=None,
            alpha=alpha,
            adjusted_alpha=None,
            comparisons=0,
            attribution_days=attribution_days,
            reason=(
                f"Fewer than two gap buckets have {min_samples} repeat contacts with conversions: "
                "no cooldown can be tested."
            ),
        )
    comparisons = len(eligible) - 1
    adjusted = alpha / comparisons
    ordered = sorted(eligible, key=lambda b: b.lower_days, reverse=True)
    for i in range(1, len(ordered)):
        shorter = ordered[i]
        # Pooled, not the best of the longer gaps: a maximum of noisy rates is biased upwards.
        reference = pool_gap_buckets(ordered[:i])
        test = gap_drop_test(reference, shorter)
        drop = test.relative_drop
        if test.p_value < adjusted and drop >= MIN_RELATIVE_DROP and shorter.upper_days is not None:
            return CooldownResult(
                testable=True,
                days=int(shorter.upper_days),
                alpha=alpha,
                adjusted_alpha=adjusted,
                comparisons=comparisons,
                attribution_days=attribution_days,
                short=shorter,
                reference=reference,
                test=test,
                reason=(
                    f"Contacts {shorter.label} after the previous one convert {drop:.0%} worse than "
                    f"after {reference.label} (p={test.p_value:.2g} < {adjusted:.3g})."
                ),
            )
    return CooldownResult(
        testable=True,
        days=None,
        alpha=alpha,
        adjusted_alpha=adjusted,
        comparisons=comparisons,
        attribution_days=attribution_days,
        reason="Short gaps between contacts do not convert significantly worse than longer ones.",
    )
