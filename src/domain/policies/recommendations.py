"""How findings become PolicyRecommendations (DESIGN 2.3): a rule the platform can apply, the
sentence that justifies it, and how confident the evidence makes us."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from domain.policies.bands import BandStats
from domain.policies.cap import CapChoice
from domain.policies.cooldown import CooldownResult, GapSummary
from domain.policies.fatigue import FatigueFinding, FatigueResult
from domain.policies.spec import ContactCaps

RuleType = Literal["frequency_cap", "cooldown"]
Scope = Literal["global", "channel"]
RECOMMENDATION_TYPE: Literal["policy"] = "policy"
RULE_FREQUENCY_CAP: RuleType = "frequency_cap"
RULE_COOLDOWN: RuleType = "cooldown"
SCOPE_GLOBAL: Scope = "global"
SCOPE_CHANNEL: Scope = "channel"
DAYS_PER_MONTH = 30
DAYS_PER_WEEK = 7
# Observational data (who got more contacts was not randomised): never claim near-certainty.
MAX_CONFIDENCE = 0.95
# Samples at which a comparison counts as fully powered for confidence, in multiples of the minimum.
FULL_CONFIDENCE_SAMPLES_FACTOR = 10
# "Absence of evidence" (no fatigue up to the cap) is weaker than a detected drop.
NO_FATIGUE_CONFIDENCE = 0.6


@dataclass(frozen=True)
class RuleConfig:
    max_per_day: int
    max_per_week: int
    max_per_month: int


@dataclass(frozen=True)
class RulePayload:
    """The rule itself: at most `max_contacts` contacts in `window_days`."""

    rule_type: RuleType
    scope: Scope
    channel: str | None
    max_contacts: int
    window_days: int
    config: RuleConfig


@dataclass(frozen=True)
class ModelEvidence:
    """What the conversion model says of the same question."""

    peak_frequency: int
    auc: float


@dataclass(frozen=True)
class FrequencyCapEvidence:
    cap_band: str
    cap_band_customer_weeks: int
    cap_band_conversion_rate: float
    cap_band_conversion_per_contact: float
    cap_band_conversions_per_customer_week: float
    configured_weekly_cap: int
    fatigue: FatigueFinding
    model: ModelEvidence | None = None
    # Which customer-weeks the cap was measured on, when not all of them.
    population: str | None = None


@dataclass(frozen=True)
class CooldownEvidence:
    short_gap: GapSummary
    reference_gap: GapSummary
    relative_drop: float
    adjusted_for_channel_mix: bool
    p_value: float
    adjusted_alpha: float | None
    attribution_days: int
    # Which contacts the cooldown was measured on, when not all of them.
    population: str | None = None


@dataclass(frozen=True)
class PolicyRecommendation:
    title: str
    description: str
    payload: RulePayload
    confidence: float
    evidence: FrequencyCapEvidence | CooldownEvidence
    type: Literal["policy"] = RECOMMENDATION_TYPE


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
) -> RuleConfig:
    """The payload's config, each limit clipped to the configured cap."""
    return RuleConfig(
        max_per_day=min(caps.daily, per_day if per_day is not None else caps.daily),
        max_per_week=min(caps.weekly, per_week if per_week is not None else caps.weekly),
        max_per_month=min(caps.monthly, per_month if per_month is not None else caps.monthly),
    )


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
    model: ModelEvidence | None = None,
    population: str | None = None,
) -> PolicyRecommendation | None:
    """A frequency_cap recommendation, or None when the choice carries no cap."""
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
    title = (
        f"Set {channel} frequency cap to {cap}/week"
        if channel is not None
        else f"Set frequency cap to {cap}/week"
    )
    return PolicyRecommendation(
        title=title,
        description=description,
        payload=RulePayload(
            rule_type=RULE_FREQUENCY_CAP,
            scope=SCOPE_CHANNEL if channel is not None else SCOPE_GLOBAL,
            channel=channel,
            max_contacts=cap,
            window_days=DAYS_PER_WEEK,
            # A weekly cap spread over a month: at most its weekly rate over 30 days.
            config=rule_config(
                caps,
                per_day=cap,
                per_week=cap,
                per_month=math.ceil(cap * DAYS_PER_MONTH / DAYS_PER_WEEK),
            ),
        ),
        confidence=confidence,
        evidence=FrequencyCapEvidence(
            cap_band=band.band.label,
            cap_band_customer_weeks=band.customer_weeks,
            cap_band_conversion_rate=band.conversion_rate,
            cap_band_conversion_per_contact=band.conversion_per_contact,
            cap_band_conversions_per_customer_week=band.conversions_per_customer_week,
            configured_weekly_cap=caps.weekly,
            fatigue=fatigue.finding(),
            model=model,
            population=population,
        ),
    )


def cooldown_recommendation(
    cooldown: CooldownResult,
    caps: ContactCaps,
    *,
    min_samples: int,
    population: str | None = None,
) -> PolicyRecommendation | None:
    """A cooldown recommendation (at most one contact per `days`), or None without one."""
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
    return PolicyRecommendation(
        title=f"Set a {days}-day cooldown between contacts",
        description=description,
        payload=RulePayload(
            rule_type=RULE_COOLDOWN,
            scope=SCOPE_GLOBAL,
            channel=None,
            max_contacts=1,
            window_days=days,
            config=rule_config(
                caps,
                per_day=1,
                per_week=math.ceil(DAYS_PER_WEEK / days),
                per_month=math.ceil(DAYS_PER_MONTH / days),
            ),
        ),
        confidence=evidence_confidence(
            cooldown.test.p_value, min(short.contacts, reference.contacts), min_samples
        ),
        evidence=CooldownEvidence(
            short_gap=short.summary(min_samples),
            reference_gap=reference.summary(min_samples),
            relative_drop=cooldown.test.relative_drop,
            adjusted_for_channel_mix=cooldown.test.stratified,
            p_value=cooldown.test.p_value,
            adjusted_alpha=cooldown.adjusted_alpha,
            attribution_days=cooldown.attribution_days,
            population=population,
        ),
    )
