"""Weekly-frequency bands: which customer-weeks fall in which band, their sufficient statistics, and
the test that conversion per contact is lower in a later band."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from domain.policies.statistics import Z_95, DropTest, Interval, p_value, wilson_interval


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
    return DropTest(z, p_value(z, "less"), ref_rate, later_rate, stratified)


@dataclass(frozen=True)
class BandSummary:
    """One band as the result reports it."""

    label: str
    min_contacts: int
    max_contacts: int | None
    customer_weeks: int
    converted_weeks: int
    conversion_rate: float
    conversion_rate_ci: Interval
    contacts: int
    conversions: int
    conversion_per_contact: float
    conversion_per_contact_ci: Interval
    conversions_per_customer_week: float
    # Enough customer-weeks (min_samples_per_band) to take part in the fatigue test.
    sufficient: bool


def band_summary(stats: BandStats, min_samples: int) -> BandSummary:
    return BandSummary(
        label=stats.band.label,
        min_contacts=stats.band.lower,
        max_contacts=stats.band.upper,
        customer_weeks=stats.customer_weeks,
        converted_weeks=stats.converted_weeks,
        conversion_rate=stats.conversion_rate,
        conversion_rate_ci=wilson_interval(stats.converted_weeks, stats.customer_weeks),
        contacts=stats.contacts,
        conversions=stats.conversions,
        conversion_per_contact=stats.conversion_per_contact,
        conversion_per_contact_ci=stats.per_contact_interval(),
        conversions_per_customer_week=stats.conversions_per_customer_week,
        sufficient=stats.customer_weeks >= min_samples,
    )
