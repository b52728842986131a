"""Contact-policy analysis: how often to contact a customer before more contacts stop paying off.

Pure rules only: the command, the statistics (Wilson intervals, z-tests), frequency bands, the fatigue
and cooldown decisions, validation against a dataset's schema, and how findings become
PolicyRecommendations (DESIGN 2.3). The aggregation over the interaction log lives in an adapter,
which hands this module counts.

Units. A *contact* is an impression (a send). A *customer-week* is one customer in one complete
calendar week (Monday 00:00 UTC) with at least one contact; its *frequency* is its number of contacts.
A customer-week's *attributed conversions* are its conversions, capped at its contacts, so that
"conversion per contact" is a proportion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from domain.data import ColumnKind
from domain.errors import ValidationFailed, field_error

RECOMMENDATION_TYPE = "policy"
RULE_FREQUENCY_CAP = "frequency_cap"
RULE_COOLDOWN = "cooldown"
SCOPE_GLOBAL = "global"
SCOPE_CHANNEL = "channel"

# 97.5% quantile of the standard normal: two-sided 95% intervals.
Z_95 = 1.959963984540054
# The seed must fit numpy's RandomState.
MAX_RANDOM_STATE = 2**32 - 1
# A drop must also matter in practice: with millions of rows a 2% dip is "significant" but does not
# justify cutting contacts. Fatigue and cooldown need at least this relative fall in conversion per
# contact, on top of statistical significance.
MIN_RELATIVE_DROP = 0.10
# Observational data (who got more contacts was not randomised): never claim near-certainty.
MAX_CONFIDENCE = 0.95
# Samples at which a comparison counts as fully powered for confidence, in multiples of the minimum.
FULL_CONFIDENCE_SAMPLES_FACTOR = 10
# "Absence of evidence" (no fatigue up to the cap) is weaker than a detected drop.
NO_FATIGUE_CONFIDENCE = 0.6
# Cooldown candidates (days): a gap bucket's upper edge becomes the cooldown. Below a day the daily
# cap already governs spacing.
COOLDOWN_EDGES_DAYS: tuple[int, ...] = (1, 2, 3, 5, 7)
DAYS_PER_MONTH = 30
DAYS_PER_WEEK = 7


# --- the command --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactCaps:
    """The platform's configured contact caps: recommendations never exceed them."""

    daily: int = 3
    weekly: int = 10
    monthly: int = 30


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
    lookback_days: int = 90
    # End of the lookback window (epoch seconds); None = the newest timestamp in the data.
    as_of: float | None = None
    caps: ContactCaps = ContactCaps()
    # Upper bounds of the weekly-frequency bands: (1, 3, 5) means 1, 2-3, 4-5 and 6+ contacts a week.
    bands: tuple[int, ...] = (1, 3, 5, 7, 10)
    min_samples_per_band: int = 30
    random_state: int = 42
    # Family-wise significance level of the fatigue and cooldown tests (Bonferroni-corrected).
    alpha: float = 0.05


# Request field names, so that errors name what the caller sent (openapi PoliciesRequest).
FIELD_NAMES: Mapping[str, str] = {
    "customer_id": "fieldMap.customerId",
    "channel": "fieldMap.channel",
    "timestamp": "fieldMap.timestamp",
    "interaction_type": "fieldMap.interactionType",
    "offer_id": "fieldMap.offerId",
    "impression_values": "interactionValues.impression",
    "click_values": "interactionValues.click",
    "conversion_values": "interactionValues.conversion",
    "lookback_days": "lookbackDays",
    "as_of": "asOf",
    "caps.daily": "caps.daily",
    "caps.weekly": "caps.weekly",
    "caps.monthly": "caps.monthly",
    "bands": "bands",
    "min_samples_per_band": "minSamplesPerBand",
    "random_state": "randomState",
    "alpha": "alpha",
}


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
    """Raise ValidationFailed, naming every wrong field, for what the request and schema alone show."""
    errors: list[dict[str, Any]] = []
    for role, column in mapped_columns(spec).items():
        name = FIELD_NAMES[role]
        if not column:
            errors.append(field_error(name, "must name a column"))
        elif column not in schema:
            errors.append(field_error(name, f"column {column!r} is not in the data"))
    ts_kind = schema.get(spec.timestamp)
    if ts_kind is ColumnKind.BOOLEAN:
        errors.append(
            field_error(FIELD_NAMES["timestamp"], f"column {spec.timestamp!r} is boolean, not a timestamp")
        )
    roles = [spec.customer_id, spec.channel, spec.timestamp, spec.interaction_type]
    if len(set(roles)) != len(roles):
        errors.append(
            field_error("fieldMap", "customerId, channel, timestamp and interactionType must differ")
        )

    seen: dict[str, str] = {}
    for attr in ("impression_values", "click_values", "conversion_values"):
        values: tuple[str, ...] = getattr(spec, attr)
        name = FIELD_NAMES[attr]
        cleaned = [normalise_value(v) for v in values]
        if not cleaned or any(not v for v in cleaned):
            errors.append(field_error(name, "must list at least one non-empty value"))
        for value in cleaned:
            other = seen.get(value)
            if other is not None and other != name:
                errors.append(field_error(name, f"value {value!r} is also listed in {other}"))
            seen.setdefault(value, name)

    if spec.lookback_days <= 0:
        errors.append(field_error(FIELD_NAMES["lookback_days"], "must be at least 1 day"))
    if spec.as_of is not None and not math.isfinite(spec.as_of):
        errors.append(field_error(FIELD_NAMES["as_of"], "must be a finite time"))

    caps = spec.caps
    for attr in ("daily", "weekly", "monthly"):
        if getattr(caps, attr) < 1:
            errors.append(field_error(f"caps.{attr}", "must be at least 1"))
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
    elif any(b <= a for a, b in zip(spec.bands, spec.bands[1:], strict=False)):
        errors.append(field_error("bands", "band bounds must be strictly increasing"))

    if spec.min_samples_per_band < 1:
        errors.append(field_error(FIELD_NAMES["min_samples_per_band"], "must be at least 1"))
    if not 0 <= spec.random_state <= MAX_RANDOM_STATE:
        errors.append(field_error(FIELD_NAMES["random_state"], f"must be between 0 and {MAX_RANDOM_STATE}"))
    if not 0.0 < spec.alpha < 1.0:
        errors.append(field_error(FIELD_NAMES["alpha"], "must be between 0 and 1 (exclusive)"))
    if errors:
        raise ValidationFailed("The contact-policy request is invalid.", errors)


# --- statistics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float

    def as_dict(self) -> dict[str, float]:
        return {"lower": self.lower, "upper": self.upper}


@dataclass(frozen=True)
class ZTest:
    z: float
    p_value: float


Alternative = Literal["two-sided", "less", "greater"]


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _p_value(z: float, alternative: Alternative) -> float:
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
    return ZTest(z, _p_value(z, alternative))


# --- frequency bands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FrequencyBand:
    """Weekly contacts in [lower, upper]; upper None = the open band above the last bound."""

    index: int
    lower: int
    upper: int | None

    @property
    def label(self) -> str:
        if self.upper is None:
            return f"{self.lower}+"
        if self.upper == self.lower:
            return str(self.lower)
        return f"{self.lower}-{self.upper}"


def frequency_bands(bounds: Sequence[int]) -> list[FrequencyBand]:
    """The bands the bounds define, plus the open band above the last bound."""
    bands: list[FrequencyBand] = []
    lower = 1
    for i, upper in enumerate(bounds):
        bands.append(FrequencyBand(i, lower, upper))
        lower = upper + 1
    bands.append(FrequencyBand(len(bounds), lower, None))
    return bands


def band_index(frequency: int, bounds: Sequence[int]) -> int:
    """Index of the band holding `frequency` contacts (len(bounds) for the open band)."""
    if frequency < 1:
        raise ValueError("a customer-week in a band has at least one contact")
    # Same rule as the adapter's vectorised form: the number of bounds strictly below the frequency.
    return sum(1 for bound in bounds if frequency > bound)


@dataclass(frozen=True)
class BandStats:
    """Sufficient statistics of the customer-weeks in one band.

    `conversions` are attributed conversions (capped at contacts per customer-week); the three sums
    of squares give the customer-week-clustered variance of conversion per contact.
    """

    band: FrequencyBand
    customer_weeks: int
    converted_weeks: int
    contacts: int
    conversions: int
    sum_conversions_sq: float = 0.0
    sum_contacts_sq: float = 0.0
    sum_cross: float = 0.0
    # The same statistics per channel (contacts and conversions on that channel within the band's
    # customer-weeks; customer_weeks = those with a contact on it), for channel-adjusted tests.
    strata: tuple[tuple[str, BandStats], ...] = ()

    @property
    def conversion_rate(self) -> float:
        """Share of customer-weeks with at least one conversion."""
        return self.converted_weeks / self.customer_weeks if self.customer_weeks else 0.0

    @property
    def conversion_per_contact(self) -> float:
        return self.conversions / self.contacts if self.contacts else 0.0

    @property
    def conversions_per_customer_week(self) -> float:
        """Expected conversions per customer and week at this frequency."""
        return self.conversions / self.customer_weeks if self.customer_weeks else 0.0

    def per_contact_variance(self) -> float:
        """Variance of the ratio estimator conversions/contacts, customer-weeks as clusters.

        Contacts within a customer-week share the customer, so they are not independent trials;
        the linearised (delta-method) variance treats each customer-week as one draw of
        (conversions, contacts). With independent contacts it equals the binomial p(1-p)/contacts.
        """
        n = self.customer_weeks
        if n < 2 or self.contacts == 0:
            return 0.0
        r = self.conversion_per_contact
        residual_ss = self.sum_conversions_sq - 2.0 * r * self.sum_cross + r * r * self.sum_contacts_sq
        return max(0.0, residual_ss) * n / (n - 1) / (self.contacts * self.contacts)

    def per_contact_interval(self) -> Interval:
        r = self.conversion_per_contact
        half = Z_95 * math.sqrt(self.per_contact_variance())
        return Interval(max(0.0, r - half), min(1.0, r + half))


def pool_band_stats(stats: Sequence[BandStats]) -> BandStats:
    """Several bands as one (the sums add up, channel by channel): the reference of a later band."""
    first = stats[0].band
    last = stats[-1].band
    by_channel: dict[str, list[BandStats]] = {}
    for s in stats:
        for name, stratum in s.strata:
            by_channel.setdefault(name, []).append(stratum)
    return BandStats(
        band=FrequencyBand(first.index, first.lower, last.upper),
        customer_weeks=sum(s.customer_weeks for s in stats),
        converted_weeks=sum(s.converted_weeks for s in stats),
        contacts=sum(s.contacts for s in stats),
        conversions=sum(s.conversions for s in stats),
        sum_conversions_sq=sum(s.sum_conversions_sq for s in stats),
        sum_contacts_sq=sum(s.sum_contacts_sq for s in stats),
        sum_cross=sum(s.sum_cross for s in stats),
        strata=tuple((name, pool_band_stats(group)) for name, group in sorted(by_channel.items())),
    )


@dataclass(frozen=True)
class DropTest:
    """A one-sided test that conversion per contact is lower in a later band than in the reference.

    Rates are channel-adjusted (weighted over the channels both sides share) when `stratified`.
    """

    z: float
    p_value: float
    reference_rate: float
    later_rate: float
    stratified: bool

    @property
    def relative_drop(self) -> float:
        return _relative_drop(self.reference_rate, self.later_rate)


def per_contact_drop_test(reference: BandStats, later: BandStats) -> DropTest:
    """One-sided z-test that conversion per contact in `later` is below `reference`.

    Variances are customer-week-clustered. With channel strata on both sides the difference is a
    weighted mean of the per-channel differences (weights n1*n2/(n1+n2) in contacts, as in
    Mantel-Haenszel), so a band that is merely richer in a weak channel does not look fatigued.
    Channel strata are treated as independent, which ignores their (small) within-week covariance.
    """
    ref_strata = dict(reference.strata)
    common = [
        (ref_strata[name], stratum)
        for name, stratum in later.strata
        if name in ref_strata and stratum.contacts > 0 and ref_strata[name].contacts > 0
    ]
    if common:
        weights = [r.contacts * s.contacts / (r.contacts + s.contacts) for r, s in common]
        total = sum(weights)
        ref_rate = (
            sum(w * r.conversion_per_contact for w, (r, _) in zip(weights, common, strict=True)) / total
        )
        later_rate = (
            sum(w * s.conversion_per_contact for w, (_, s) in zip(weights, common, strict=True)) / total
        )
        variance = sum(
            w * w * (r.per_contact_variance() + s.per_contact_variance())
            for w, (r, s) in zip(weights, common, strict=True)
        ) / (total * total)
        stratified = True
    else:
        ref_rate = reference.conversion_per_contact
        later_rate = later.conversion_per_contact
        variance = reference.per_contact_variance() + later.per_contact_variance()
        stratified = False
    if variance <= 0.0:
        # No variance (e.g. no conversions anywhere): nothing can be shown.
        return DropTest(0.0, 1.0, ref_rate, later_rate, stratified)
    z = (later_rate - ref_rate) / math.sqrt(variance)
    return DropTest(z, _p_value(z, "less"), ref_rate, later_rate, stratified)


def band_summary(stats: BandStats, min_samples: int) -> dict[str, Any]:
    """One entry of the result's frequencyBands[]."""
    return {
        "band": stats.band.label,
        "minContacts": stats.band.lower,
        "maxContacts": stats.band.upper,
        "customerWeeks": stats.customer_weeks,
        "convertedWeeks": stats.converted_weeks,
        "conversionRate": stats.conversion_rate,
        "conversionRateCi": wilson_interval(stats.converted_weeks, stats.customer_weeks).as_dict(),
        "contacts": stats.contacts,
        "conversions": stats.conversions,
        "conversionPerContact": stats.conversion_per_contact,
        "conversionPerContactCi": stats.per_contact_interval().as_dict(),
        "conversionsPerCustomerWeek": stats.conversions_per_customer_week,
        "sufficient": stats.customer_weeks >= min_samples,
    }


# --- fatigue ------------------------------------------------------------------------------------

FATIGUE_METHOD = (
    "Bands with at least minSamplesPerBand customer-weeks are walked in order of frequency; each is "
    "compared with all the lower bands pooled (one-sided z-test of conversion per contact, adjusted "
    "for channel mix, customer-week-clustered variance, Bonferroni-corrected alpha). Fatigue starts "
    "at the first band "
    f"significantly below that reference by at least {MIN_RELATIVE_DROP:.0%}."
)


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

    def as_dict(self) -> dict[str, Any]:
        detected = self.detected
        return {
            "testable": self.testable,
            "detected": detected,
            "band": self.last_good.band.label if detected and self.last_good else None,
            "maxContactsBeforeFatigue": self.last_good.band.upper if detected and self.last_good else None,
            "fatiguedBand": self.fatigued.band.label if self.fatigued else None,
            "referenceBands": self.reference.band.label if self.reference else None,
            "referenceConversionPerContact": self.reference.conversion_per_contact
            if self.reference
            else None,
            "fatiguedConversionPerContact": self.fatigued.conversion_per_contact if self.fatigued else None,
            **_test_fields(self.test, self.alpha, self.adjusted_alpha, self.comparisons),
            "minRelativeDrop": MIN_RELATIVE_DROP,
            "method": FATIGUE_METHOD,
            "reason": self.reason,
        }


def _test_fields(
    test: DropTest | None, alpha: float, adjusted_alpha: float | None, comparisons: int
) -> dict[str, Any]:
    """The significance fields the fatigue and cooldown results report alike."""
    return {
        "relativeDrop": test.relative_drop if test else None,
        "adjustedForChannelMix": test.stratified if test else False,
        "z": test.z if test else None,
        "pValue": test.p_value if test else None,
        "alpha": alpha,
        "adjustedAlpha": adjusted_alpha,
        "comparisons": comparisons,
    }


def _relative_drop(reference_rate: float, rate: float) -> float:
    return (reference_rate - rate) / reference_rate if reference_rate > 0 else 0.0


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


# --- the weekly cap -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CapChoice:
    """The recommended weekly cap (None: the data does not support one) and why."""

    cap: int | None
    band: BandStats | None
    fatigue_detected: bool
    reason: str


def choose_weekly_cap(
    stats: Sequence[BandStats], fatigue: FatigueResult, caps: ContactCaps, *, min_samples: int
) -> CapChoice:
    """The frequency that maximises conversions per customer-week without significant fatigue.

    With fatigue: among the eligible bands before the fatigued one, the band with the most
    conversions per customer-week; the cap is its upper bound. Without fatigue the configured weekly
    cap stands, but only when the data reaches it (a band at or above the cap has enough samples):
    otherwise nothing is known about frequencies near the cap and no cap is recommended. Never above
    the configured weekly cap.
    """
    if not fatigue.testable:
        return CapChoice(None, None, False, fatigue.reason)
    eligible = [s for s in stats if s.customer_weeks >= min_samples and s.contacts > 0]
    if fatigue.detected and fatigue.fatigued is not None:
        before = [s for s in eligible if s.band.index < fatigue.fatigued.band.index]
        best = max(before, key=lambda s: (s.conversions_per_customer_week, s.band.index))
        upper = best.band.upper if best.band.upper is not None else caps.weekly
        return CapChoice(min(upper, caps.weekly), best, True, fatigue.reason)
    reaching = [s for s in eligible if s.band.upper is None or s.band.upper >= caps.weekly]
    if not reaching:
        highest = eligible[-1]
        return CapChoice(
            None,
            None,
            False,
            f"No significant fatigue up to {highest.band.label} contacts/week, but fewer than "
            f"{min_samples} customer-weeks reach the configured cap of {caps.weekly}/week: the data "
            "cannot support a cap between them.",
        )
    return CapChoice(caps.weekly, reaching[0], False, fatigue.reason)


# --- cooldown -----------------------------------------------------------------------------------

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

    def as_dict(self, min_samples: int) -> dict[str, Any]:
        return {
            "gap": self.label,
            "minDays": self.lower_days,
            "maxDays": self.upper_days,
            "contacts": self.contacts,
            "conversions": self.conversions,
            "conversionRate": self.rate,
            "conversionRateCi": wilson_interval(self.conversions, self.contacts).as_dict(),
            "sufficient": self.contacts >= min_samples,
        }


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
    return DropTest(z, _p_value(z, "less"), ref_rate, short_rate, True)


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

    def as_dict(self, buckets: Sequence[GapBucketStats], min_samples: int) -> dict[str, Any]:
        return {
            "testable": self.testable,
            "recommendedDays": self.days,
            "gaps": [b.as_dict(min_samples) for b in buckets],
            "shortGap": self.short.label if self.short else None,
            "referenceGap": self.reference.label if self.reference else None,
            **_test_fields(self.test, self.alpha, self.adjusted_alpha, self.comparisons),
            "attributionDays": self.attribution_days,
            "method": COOLDOWN_METHOD.format(attribution=self.attribution_days),
            "reason": self.reason,
        }


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


# --- confidence and recommendations -------------------------------------------------------------


def evidence_confidence(p_value: float, smaller_sample: int, min_samples: int) -> float:
    """0..MAX_CONFIDENCE: how sure the test is (1 - p), scaled down while the smaller compared group
    has fewer than FULL_CONFIDENCE_SAMPLES_FACTOR x the minimum samples."""
    size = min(1.0, smaller_sample / (FULL_CONFIDENCE_SAMPLES_FACTOR * max(1, min_samples)))
    return round(min(MAX_CONFIDENCE, max(0.0, (1.0 - p_value) * size)), 3)


def rule_config(
    caps: ContactCaps,
    *,
    per_day: int | None = None,
    per_week: int | None = None,
    per_month: int | None = None,
) -> dict[str, int]:
    """The payload's config, each limit clipped to the configured cap."""
    return {
        "maxPerDay": min(caps.daily, per_day if per_day is not None else caps.daily),
        "maxPerWeek": min(caps.weekly, per_week if per_week is not None else caps.weekly),
        "maxPerMonth": min(caps.monthly, per_month if per_month is not None else caps.monthly),
    }


def _pct(rate: float) -> str:
    return f"{rate:.2%}"


def _band_phrase(stats: BandStats) -> str:
    return (
        f"{stats.band.label} contacts/week ({stats.customer_weeks:,} customer-weeks, "
        f"{_pct(stats.conversion_per_contact)} conversion per contact)"
    )


def frequency_cap_recommendation(
    choice: CapChoice,
    fatigue: FatigueResult,
    caps: ContactCaps,
    *,
    min_samples: int,
    channel: str | None = None,
    extra_evidence: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """A frequency_cap PolicyRecommendation, or None when the choice carries no cap."""
    if choice.cap is None or choice.band is None:
        return None
    cap = min(choice.cap, caps.weekly)
    band = choice.band
    who = f"{channel} contacts" if channel is not None else "contacts"
    if choice.fatigue_detected and fatigue.fatigued is not None and fatigue.test is not None:
        fatigued = fatigue.fatigued
        description = (
            f"Conversion per contact falls from {_band_phrase(fatigue.reference or band)} to "
            f"{_band_phrase(fatigued)} (one-sided z-test p={fatigue.test.p_value:.2g}, "
            f"Bonferroni alpha {fatigue.adjusted_alpha:.3g}). Customer-weeks at {band.band.label} "
            f"{who}/week yield the most conversions before fatigue: "
            f"{band.conversions_per_customer_week:.3f} per customer-week, "
            f"{_pct(band.conversion_rate)} of {band.customer_weeks:,} customer-weeks converting."
        )
        confidence = evidence_confidence(
            fatigue.test.p_value, min(band.customer_weeks, fatigued.customer_weeks), min_samples
        )
    else:
        description = (
            f"No significant fatigue in {who}: conversion per contact does not fall significantly up to "
            f"{_band_phrase(band)}. Keep the configured cap of {caps.weekly}/week."
        )
        size = min(1.0, band.customer_weeks / (FULL_CONFIDENCE_SAMPLES_FACTOR * max(1, min_samples)))
        confidence = round(NO_FATIGUE_CONFIDENCE * size, 3)
    evidence: dict[str, Any] = {
        "capBand": band.band.label,
        "capBandCustomerWeeks": band.customer_weeks,
        "capBandConversionRate": band.conversion_rate,
        "capBandConversionPerContact": band.conversion_per_contact,
        "capBandConversionsPerCustomerWeek": band.conversions_per_customer_week,
        "configuredWeeklyCap": caps.weekly,
        "fatigue": fatigue.as_dict(),
    }
    if extra_evidence:
        evidence.update(extra_evidence)
    title = (
        f"Set {channel} frequency cap to {cap}/week"
        if channel is not None
        else f"Set frequency cap to {cap}/week"
    )
    return {
        "type": RECOMMENDATION_TYPE,
        "title": title,
        "description": description,
        "payload": {
            "ruleType": RULE_FREQUENCY_CAP,
            "scope": SCOPE_CHANNEL if channel is not None else SCOPE_GLOBAL,
            "channel": channel,
            "maxContacts": cap,
            "windowDays": DAYS_PER_WEEK,
            # A weekly cap spread over a month: at most its weekly rate over 30 days.
            "config": rule_config(
                caps,
                per_day=cap,
                per_week=cap,
                per_month=math.ceil(cap * DAYS_PER_MONTH / DAYS_PER_WEEK),
            ),
        },
        "confidence": confidence,
        "evidence": evidence,
    }


def cooldown_recommendation(
    cooldown: CooldownResult,
    caps: ContactCaps,
    *,
    min_samples: int,
    extra_evidence: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """A cooldown PolicyRecommendation (at most one contact per `days`), or None without one."""
    if cooldown.days is None or cooldown.short is None or cooldown.reference is None or cooldown.test is None:
        return None
    days = cooldown.days
    short, reference = cooldown.short, cooldown.reference
    description = (
        f"Contacts sent {short.label} after the previous contact convert at {_pct(short.rate)} "
        f"({short.contacts:,} contacts) against {_pct(reference.rate)} after {reference.label} "
        f"({reference.contacts:,} contacts); one-sided z-test p={cooldown.test.p_value:.2g}, "
        f"Bonferroni alpha {cooldown.adjusted_alpha:.3g}. Conversions are credited to the last contact "
        f"within {cooldown.attribution_days} days."
    )
    return {
        "type": RECOMMENDATION_TYPE,
        "title": f"Set a {days}-day cooldown between contacts",
        "description": description,
        "payload": {
            "ruleType": RULE_COOLDOWN,
            "scope": SCOPE_GLOBAL,
            "channel": None,
            "maxContacts": 1,
            "windowDays": days,
            "config": rule_config(
                caps,
                per_day=1,
                per_week=math.ceil(DAYS_PER_WEEK / days),
                per_month=math.ceil(DAYS_PER_MONTH / days),
            ),
        },
        "confidence": evidence_confidence(
            cooldown.test.p_value, min(short.contacts, reference.contacts), min_samples
        ),
        "evidence": {
            "shortGap": short.as_dict(min_samples),
            "referenceGap": reference.as_dict(min_samples),
            "relativeDrop": cooldown.test.relative_drop,
            "adjustedForChannelMix": cooldown.test.stratified,
            "pValue": cooldown.test.p_value,
            "adjustedAlpha": cooldown.adjusted_alpha,
            "attributionDays": cooldown.attribution_days,
            **(extra_evidence or {}),
        },
    }


def channel_rate_summary(channel: str, impressions: int, clicks: int, conversions: int) -> dict[str, Any]:
    """Rates of one channel: CTR = clicks/impressions, CVR = conversions/clicks, with Wilson intervals.

    A rate whose numerator exceeds its denominator (e.g. view-through conversions without clicks) is
    still reported, but its interval is null: it is not a proportion.
    """

    def rate(num: int, den: int) -> tuple[float | None, dict[str, float] | None]:
        if den == 0:
            return None, None
        ci = wilson_interval(num, den).as_dict() if num <= den else None
        return num / den, ci

    ctr, ctr_ci = rate(clicks, impressions)
    cvr, cvr_ci = rate(conversions, clicks)
    cpi, cpi_ci = rate(conversions, impressions)
    return {
        "channel": channel,
        "impressions": impressions,
        "clicks": clicks,
        "conversions": conversions,
        "ctr": ctr,
        "ctrCi": ctr_ci,
        "cvr": cvr,
        "cvrCi": cvr_ci,
        "conversionsPerImpression": cpi,
        "conversionsPerImpressionCi": cpi_ci,
    }
