"""Fatigue: the weekly frequency beyond which conversion per contact falls significantly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.policies.bands import BandStats, per_contact_drop_test, pool_band_stats
from domain.policies.statistics import MIN_RELATIVE_DROP, DropTest, Significance, significance

FATIGUE_METHOD = (
    "Bands with at least `min_samples_per_band` customer-weeks are walked in order of frequency; each is "
    "compared with all the lower bands pooled (one-sided z-test of conversion per contact, adjusted "
    "for channel mix, customer-week-clustered variance, Bonferroni-corrected alpha). Fatigue starts "
    "at the first band "
    f"significantly below that reference by at least {MIN_RELATIVE_DROP:.0%}."
)


@dataclass(frozen=True)
class FatigueFinding:
    """What the result reports of a fatigue test (overall, and in a frequency cap's evidence)."""

    testable: bool
    detected: bool
    # The last band before the drop, and its upper bound: None unless fatigue was detected.
    band: str | None
    max_contacts_before_fatigue: int | None
    fatigued_band: str | None
    reference_bands: str | None
    reference_conversion_per_contact: float | None
    fatigued_conversion_per_contact: float | None
    significance: Significance
    min_relative_drop: float
    method: str
    reason: str


@dataclass(frozen=True)
class FatigueResult:
    testable: bool
    detected: bool
    alpha: float
    adjusted_alpha: float | None
    comparisons: int
    # The last band before the drop (the band beyond which conversion per contact falls).
    last_good: BandStats | None = None
    fatigued: BandStats | None = None
    # The lower bands pooled, which the fatigued band was compared with.
    reference: BandStats | None = None
    test: DropTest | None = None
    reason: str = ""

    def finding(self) -> FatigueFinding:
        before = self.last_good if self.detected else None
        return FatigueFinding(
            testable=self.testable,
            detected=self.detected,
            band=before.band.label if before else None,
            max_contacts_before_fatigue=before.band.upper if before else None,
            fatigued_band=self.fatigued.band.label if self.fatigued else None,
            reference_bands=self.reference.band.label if self.reference else None,
            reference_conversion_per_contact=self.reference.conversion_per_contact
            if self.reference
            else None,
            fatigued_conversion_per_contact=self.fatigued.conversion_per_contact if self.fatigued else None,
            significance=significance(self.test, self.alpha, self.adjusted_alpha, self.comparisons),
            min_relative_drop=MIN_RELATIVE_DROP,
            method=FATIGUE_METHOD,
            reason=self.reason,
        )


def detect_fatigue(stats: Sequence[BandStats], *, alpha: float, min_samples: int) -> FatigueResult:
    """Find the band beyond which conversion per contact falls significantly (see FATIGUE_METHOD).

    The reference is the pool of all lower bands, not the best of them: picking the maximum of
    several noisy rates would bias the reference upwards and find fatigue where there is none.
    """
    eligible = [s for s in stats if s.customer_weeks >= min_samples and s.contacts > 0]
    if len(eligible) < 2:
        return FatigueResult(
            testable=False,
            detected=False,
            alpha=alpha,
            adjusted_alpha=None,
            comparisons=0,
            reason=(
                f"{len(eligible)} band(s) have at least {min_samples} customer-weeks; "
                "at least two are needed to test for fatigue."
            ),
        )
    if sum(s.conversions for s in eligible) == 0:
        return FatigueResult(
            testable=False,
            detected=False,
            alpha=alpha,
            adjusted_alpha=None,
            comparisons=0,
            reason="No conversions in the bands with enough customer-weeks: fatigue cannot be measured.",
        )
    comparisons = len(eligible) - 1
    adjusted = alpha / comparisons
    closest: tuple[BandStats, DropTest, BandStats] | None = None
    for i in range(1, len(eligible)):
        later = eligible[i]
        reference = pool_band_stats(eligible[:i])
        test = per_contact_drop_test(reference, later)
        drop = test.relative_drop
        if test.p_value < adjusted and drop >= MIN_RELATIVE_DROP:
            return FatigueResult(
                testable=True,
                detected=True,
                alpha=alpha,
                adjusted_alpha=adjusted,
                comparisons=comparisons,
                last_good=eligible[i - 1],
                fatigued=later,
                reference=reference,
                test=test,
                reason=(
                    f"Conversion per contact at {later.band.label} contacts/week is {drop:.0%} below the "
                    f"lower bands ({reference.band.label}; p={test.p_value:.2g} < {adjusted:.3g})."
                ),
            )
        if closest is None or test.p_value < closest[1].p_value:
            closest = (later, test, reference)
    highest = eligible[-1]
    return FatigueResult(
        testable=True,
        detected=False,
        alpha=alpha,
        adjusted_alpha=adjusted,
        comparisons=comparisons,
        last_good=highest,
        # The comparison that came closest, for the record.
        reference=closest[2] if closest else None,
        test=closest[1] if closest else None,
        reason=(
            f"No band up to {highest.band.label} contacts/week converts significantly worse per contact "
            "than the lower bands."
        ),
    )
