"""Pure rules of the contact-policy analysis: statistics, bands, fatigue, cooldown, validation, payloads."""

from __future__ import annotations

import math

import pytest

from domain.data import ColumnKind
from domain.errors import ValidationFailed
from domain.policies.bands import BandStats, FrequencyBand, band_index, frequency_bands, per_contact_drop_test
from domain.policies.cap import choose_weekly_cap
from domain.policies.channels import channel_rate_summary
from domain.policies.cooldown import GapBucketStats, detect_cooldown, gap_bucket_edges
from domain.policies.fatigue import detect_fatigue
from domain.policies.recommendations import (
    MAX_CONFIDENCE,
    FrequencyCapEvidence,
    RuleConfig,
    RulePayload,
    cooldown_recommendation,
    frequency_cap_recommendation,
)
from domain.policies.spec import MAX_RANDOM_STATE, ContactCaps, PolicySpec, validate_policy_spec
from domain.policies.statistics import Interval, two_proportion_z_test, wilson_interval

SCHEMA = {
    "customerId": ColumnKind.CATEGORICAL,
    "channel": ColumnKind.CATEGORICAL,
    "timestamp": ColumnKind.CATEGORICAL,
    "interactionType": ColumnKind.CATEGORICAL,
}
BOUNDS = (1, 3, 5, 7, 10)

# --- statistics ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "trials", "lower", "upper"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857-872, table I, method 3 (Wilson score).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # By hand: p = 0.3, z^2 = 3.8415, centre 0.3555, half-width 0.2477.
        (3, 10, 0.1078, 0.6032),
    ],
)
def test_wilson_interval_matches_published_values(
    successes: int, trials: int, lower: float, upper: float
) -> None:
    interval = wilson_interval(successes, trials)
    assert interval.lower == pytest.approx(lower, abs=5e-5)
    assert interval.upper == pytest.approx(upper, abs=5e-5)


def test_wilson_interval_edges() -> None:
    assert wilson_interval(0, 0) == Interval(0.0, 1.0)
    full = wilson_interval(20, 20)
    assert full.upper == 1.0 and full.lower == pytest.approx(1 - 0.1611, abs=5e-5)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_two_proportion_z_test_by_hand() -> None:
    # 30/100 vs 20/100: pooled p 0.25, se = sqrt(0.25 * 0.75 * (1/100 + 1/100)) = 0.0612372.
    z = 0.1 / math.sqrt(0.25 * 0.75 * 0.02)
    two_sided = two_proportion_z_test(30, 100, 20, 100)
    assert two_sided.z == pytest.approx(z) == pytest.approx(1.6329932)
    assert two_sided.p_value == pytest.approx(0.1024704, abs=1e-6)
    assert two_proportion_z_test(30, 100, 20, 100, "greater").p_value == pytest.approx(0.0512352, abs=1e-6)
    assert two_proportion_z_test(30, 100, 20, 100, "less").p_value == pytest.approx(0.9487648, abs=1e-6)
    assert two_proportion_z_test(0, 10, 0, 10).p_value == 1.0


# --- bands --------------------------------------------------------------------------------------


def test_bands_are_upper_bounds_plus_an_open_band() -> None:
    bands = frequency_bands(BOUNDS)
    assert [b.label for b in bands] == ["1", "2-3", "4-5", "6-7", "8-10", "11+"]
    assert [(b.lower, b.upper) for b in bands][-2:] == [(8, 10), (11, None)]
    assert [band_index(f, BOUNDS) for f in (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 40)] == [
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        5,
    ]
    with pytest.raises(ValueError):
        band_index(0, BOUNDS)


def _band(index: int, weeks: int, contacts_per_week: int, rate: float, strata: tuple = ()) -> BandStats:
    """Customer-weeks of `contacts_per_week` contacts each, converting `rate` of contacts, with
    conversions spread as evenly as possible (so the clustered variance is small but not zero)."""
    band = frequency_bands(BOUNDS)[index]
    contacts = weeks * contacts_per_week
    conversions = round(contacts * rate)
    # Per customer-week y is either q or q + 1: exact sums of squares of that layout.
    q, extra = divmod(conversions, weeks)
    y2 = (weeks - extra) * q * q + extra * (q + 1) ** 2
    return BandStats(
        band=band,
        customer_weeks=weeks,
        converted_weeks=min(weeks, conversions),
        contacts=contacts,
        conversions=conversions,
        sum_conversions_sq=float(y2),
        sum_contacts_sq=float(weeks * contacts_per_week**2),
        sum_cross=float(conversions * contacts_per_week),
        strata=strata,
    )


def test_clustered_variance_reduces_to_binomial_with_one_contact_per_week() -> None:
    # 100 customer-weeks of one contact, 20 converted: Var = r(1-r)/(n-1) for r = 0.2.
    stats = BandStats(frequency_bands(BOUNDS)[0], 100, 20, 100, 20, 20.0, 100.0, 20.0)
    assert stats.per_contact_variance() == pytest.approx(0.2 * 0.8 / 99)
    interval = stats.per_contact_interval()
    assert interval.lower == pytest.approx(0.2 - 1.959964 * math.sqrt(0.16 / 99), abs=1e-6)


def test_fatigue_found_at_the_first_significant_drop() -> None:
    stats = [
        _band(0, 500, 1, 0.08),
        _band(1, 500, 2, 0.08),
        _band(2, 500, 4, 0.08),
        _band(3, 500, 6, 0.03),  # conversion per contact falls here
        _band(4, 500, 9, 0.01),
        _band(5, 5, 12, 0.0),  # too few customer-weeks: ignored
    ]
    fatigue = detect_fatigue(stats, alpha=0.05, min_samples=30)
    assert fatigue.detected and fatigue.testable
    assert fatigue.last_good is not None and fatigue.last_good.band.label == "4-5"
    assert fatigue.fatigued is not None and fatigue.fatigued.band.label == "6-7"
    assert fatigue.comparisons == 4 and fatigue.adjusted_alpha == pytest.approx(0.0125)
    assert fatigue.test is not None and fatigue.test.p_value < 0.0125
    finding = fatigue.finding()
    assert finding.band == "4-5" and finding.max_contacts_before_fatigue == 5
    assert finding.reference_bands == "1-5"
    assert finding.significance.p_value == fatigue.test.p_value and finding.significance.comparisons == 4

    choice = choose_weekly_cap(stats, fatigue, ContactCaps(), min_samples=30)
    assert choice.cap == 5 and choice.fatigue_detected


def test_no_fatigue_with_flat_rates_keeps_the_configured_cap() -> None:
    stats = [_band(i, 400, f, 0.05) for i, f in enumerate((1, 2, 4, 6, 9, 12))]
    fatigue = detect_fatigue(stats, alpha=0.05, min_samples=30)
    assert fatigue.testable and not fatigue.detected
    # The band before fatigue is reported only when fatigue was detected.
    assert fatigue.last_good is not None and fatigue.finding().band is None
    choice = choose_weekly_cap(stats, fatigue, ContactCaps(weekly=10), min_samples=30)
    assert choice.cap == 10 and not choice.fatigue_detected


def test_no_cap_when_the_data_does_not_reach_the_configured_cap() -> None:
    stats = [_band(i, 400, f, 0.05) for i, f in enumerate((1, 2, 4))] + [
        _band(i, 3, f, 0.05) for i, f in ((3, 6), (4, 9), (5, 12))
    ]
    fatigue = detect_fatigue(stats, alpha=0.05, min_samples=30)
    choice = choose_weekly_cap(stats, fatigue, ContactCaps(weekly=10), min_samples=30)
    assert choice.cap is None and "cannot support" in choice.reason
    assert frequency_cap_recommendation(choice, fatigue, ContactCaps(), min_samples=30) is None


def test_significant_but_tiny_drop_is_not_fatigue() -> None:
    # 2% lower conversion per contact on a million customer-weeks: significant, but not worth a cap.
    stats = [_band(0, 1_000_000, 1, 0.1000), _band(1, 1_000_000, 2, 0.0980)]
    fatigue = detect_fatigue(stats, alpha=0.05, min_samples=30)
    assert fatigue.test is not None and fatigue.test.p_value < 1e-6
    assert not fatigue.detected


def test_too_few_bands_or_no_conversions_is_not_testable() -> None:
    few = detect_fatigue([_band(0, 400, 1, 0.1), _band(1, 10, 2, 0.0)], alpha=0.05, min_samples=30)
    assert not few.testable and "at least two" in few.reason
    none = detect_fatigue([_band(0, 400, 1, 0.0), _band(1, 400, 2, 0.0)], alpha=0.05, min_samples=30)
    assert not none.testable and "No conversions" in none.reason
    assert choose_weekly_cap([], none, ContactCaps(), min_samples=30).cap is None


def test_channel_mix_alone_is_not_fatigue() -> None:
    """Band 2-3 is mostly the weak channel: pooled conversion per contact halves, per channel it is flat."""
    band0, band1 = frequency_bands(BOUNDS)[0], frequency_bands(BOUNDS)[1]
    strong0, weak0 = _band(0, 800, 1, 0.10), _band(0, 200, 1, 0.02)
    strong1, weak1 = _band(1, 200, 2, 0.10), _band(1, 800, 2, 0.02)

    def combined(band: FrequencyBand, strong: BandStats, weak: BandStats, strata: bool) -> BandStats:
        return BandStats(
            band=band,
            customer_weeks=strong.customer_weeks + weak.customer_weeks,
            converted_weeks=strong.converted_weeks + weak.converted_weeks,
            contacts=strong.contacts + weak.contacts,
            conversions=strong.conversions + weak.conversions,
            sum_conversions_sq=strong.sum_conversions_sq + weak.sum_conversions_sq,
            sum_contacts_sq=strong.sum_contacts_sq + weak.sum_contacts_sq,
            sum_cross=strong.sum_cross + weak.sum_cross,
            strata=(("strong", strong), ("weak", weak)) if strata else (),
        )

    plain = [combined(band0, strong0, weak0, False), combined(band1, strong1, weak1, False)]
    adjusted = [combined(band0, strong0, weak0, True), combined(band1, strong1, weak1, True)]
    assert detect_fatigue(plain, alpha=0.05, min_samples=30).detected  # confounded by the mix
    result = detect_fatigue(adjusted, alpha=0.05, min_samples=30)
    assert not result.detected
    assert result.test is not None and result.test.stratified
    assert result.test.relative_drop == pytest.approx(0.0, abs=1e-9)
    test = per_contact_drop_test(adjusted[0], adjusted[1])
    assert test.reference_rate == pytest.approx(test.later_rate)


def test_cap_is_never_above_the_configured_weekly_cap() -> None:
    bounds = (5, 20)
    bands = frequency_bands(bounds)
    stats = [
        BandStats(bands[0], 500, 100, 1500, 120, 200.0, 4500.0, 360.0),
        BandStats(bands[1], 500, 100, 6000, 480, 800.0, 72000.0, 5760.0),
        BandStats(bands[2], 500, 5, 12000, 10, 10.0, 288000.0, 240.0),
    ]
    fatigue = detect_fatigue(stats, alpha=0.05, min_samples=30)
    assert fatigue.detected and fatigue.last_good is not None and fatigue.last_good.band.upper == 20
    caps = ContactCaps(daily=2, weekly=10, monthly=25)
    choice = choose_weekly_cap(stats, fatigue, caps, min_samples=30)
    assert choice.cap == 10
    rec = frequency_cap_recommendation(choice, fatigue, caps, min_samples=30)
    assert rec is not None
    assert rec.payload.max_contacts == 10
    assert rec.payload.config == RuleConfig(max_per_day=2, max_per_week=10, max_per_month=25)


# --- cooldown -----------------------------------------------------------------------------------


def _buckets(rates: list[float], contacts: int = 5_000) -> list[GapBucketStats]:
    return [
        GapBucketStats(lower, upper, contacts, round(contacts * rate))
        for (lower, upper), rate in zip(gap_bucket_edges(), rates, strict=True)
    ]


def test_cooldown_is_the_upper_edge_of_the_longest_gap_that_converts_worse() -> None:
    # [0,1) and [1,2) days convert at half the rate of longer gaps: wait at least 2 days.
    buckets = _buckets([0.02, 0.025, 0.05, 0.05, 0.05, 0.05])
    cooldown = detect_cooldown(buckets, alpha=0.05, min_samples=30, attribution_days=7)
    assert cooldown.days == 2
    assert cooldown.short is not None and cooldown.short.label == "1-2d"
    assert cooldown.reference is not None and cooldown.reference.label == ">=2d"
    rec = cooldown_recommendation(cooldown, ContactCaps(), min_samples=30)
    assert rec is not None
    assert rec.title == "Set a 2-day cooldown between contacts"
    assert rec.payload == RulePayload(
        rule_type="cooldown",
        scope="global",
        channel=None,
        max_contacts=1,
        window_days=2,
        config=RuleConfig(max_per_day=1, max_per_week=4, max_per_month=15),
    )
    assert 0 < rec.confidence <= MAX_CONFIDENCE


def test_no_cooldown_when_gaps_do_not_matter_or_data_is_thin() -> None:
    flat = detect_cooldown(_buckets([0.05] * 6), alpha=0.05, min_samples=30, attribution_days=7)
    assert flat.testable and flat.days is None
    assert cooldown_recommendation(flat, ContactCaps(), min_samples=30) is None
    thin = detect_cooldown(
        _buckets([0.0, 0.5, 0.5, 0.5, 0.5, 0.5], contacts=10), alpha=0.05, min_samples=30, attribution_days=7
    )
    assert not thin.testable and thin.days is None


# --- validation ---------------------------------------------------------------------------------


def _fields(spec: PolicySpec, schema: dict[str, ColumnKind] = SCHEMA) -> set[str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_policy_spec(spec, schema)
    return {d["field"] for d in caught.value.details}


def test_a_default_spec_on_matching_columns_is_valid() -> None:
    validate_policy_spec(PolicySpec(), SCHEMA)
    validate_policy_spec(PolicySpec(offer_id="offer"), {**SCHEMA, "offer": ColumnKind.CATEGORICAL})


def test_validation_names_each_wrong_field() -> None:
    assert _fields(PolicySpec(timestamp="ts", offer_id="offer")) == {"timestamp", "offer_id"}
    assert _fields(PolicySpec(bands=(1, 3, 3))) == {"bands"}
    assert _fields(PolicySpec(bands=(0, 3))) == {"bands"}
    assert _fields(PolicySpec(bands=())) == {"bands"}
    assert _fields(PolicySpec(caps=ContactCaps(daily=5, weekly=4, monthly=30))) == {"caps.daily"}
    assert _fields(PolicySpec(caps=ContactCaps(daily=1, weekly=40, monthly=30))) == {"caps.weekly"}
    assert "caps.daily" in _fields(PolicySpec(caps=ContactCaps(daily=0)))
    assert _fields(PolicySpec(lookback_days=0)) == {"lookback_days"}
    assert _fields(PolicySpec(lookback_days=3651)) == {"lookback_days"}
    assert _fields(PolicySpec(min_samples_per_band=0)) == {"min_samples_per_band"}
    assert _fields(PolicySpec(random_state=MAX_RANDOM_STATE + 1)) == {"random_state"}
    assert _fields(PolicySpec(alpha=1.0)) == {"alpha"}
    assert _fields(PolicySpec(click_values=("Impression",))) == {"click_values"}
    assert _fields(PolicySpec(conversion_values=())) == {"conversion_values"}
    assert _fields(PolicySpec(as_of=math.nan)) == {"as_of"}
    assert _fields(PolicySpec(), {**SCHEMA, "timestamp": ColumnKind.BOOLEAN}) == {"timestamp"}
    assert _fields(PolicySpec(channel="customerId")) == {"field_map"}


# --- recommendations ----------------------------------------------------------------------------


def test_frequency_cap_recommendation_has_the_design_shape() -> None:
    stats = [_band(i, 500, f, r) for i, (f, r) in enumerate(((1, 0.08), (2, 0.08), (4, 0.02)))]
    fatigue = detect_fatigue(stats, alpha=0.05, min_samples=30)
    choice = choose_weekly_cap(stats, fatigue, ContactCaps(), min_samples=30)
    assert choice.cap == 3
    rec = frequency_cap_recommendation(choice, fatigue, ContactCaps(), min_samples=30)
    assert rec is not None
    assert rec.type == "policy"
    assert rec.title == "Set frequency cap to 3/week"
    assert rec.payload == RulePayload(
        rule_type="frequency_cap",
        scope="global",
        channel=None,
        max_contacts=3,
        window_days=7,
        config=RuleConfig(max_per_day=3, max_per_week=3, max_per_month=13),
    )
    # The description cites sample sizes and rates.
    assert "500 customer-weeks" in rec.description and "%" in rec.description
    assert 0.0 <= rec.confidence <= MAX_CONFIDENCE
    assert isinstance(rec.evidence, FrequencyCapEvidence)
    assert rec.evidence.fatigue.detected is True and rec.evidence.cap_band == "2-3"

    channel = frequency_cap_recommendation(choice, fatigue, ContactCaps(), min_samples=30, channel="sms")
    assert channel is not None
    assert channel.title == "Set sms frequency cap to 3/week"
    assert channel.payload.scope == "channel" and channel.payload.channel == "sms"


def test_channel_rates_and_intervals_by_hand() -> None:
    summary = channel_rate_summary("email", impressions=10, clicks=3, conversions=1)
    assert summary.ctr == pytest.approx(0.3)
    assert summary.ctr_ci is not None and summary.cvr_ci is not None
    assert summary.ctr_ci.lower == pytest.approx(0.1078, abs=5e-5)
    assert summary.ctr_ci.upper == pytest.approx(0.6032, abs=5e-5)
    assert summary.cvr == pytest.approx(1 / 3)
    # Wilson 1/3 by hand: centre (1/3 + 0.6402) / 2.2805 = 0.4269, half 0.3652.
    assert summary.cvr_ci.lower == pytest.approx(0.0615, abs=5e-4)
    assert summary.cvr_ci.upper == pytest.approx(0.7923, abs=5e-4)
    # More conversions than clicks is not a proportion: no interval.
    odd = channel_rate_summary("web", impressions=10, clicks=1, conversions=3)
    assert odd.cvr == pytest.approx(3.0) and odd.cvr_ci is None
    assert channel_rate_summary("none", 0, 0, 0).ctr is None
