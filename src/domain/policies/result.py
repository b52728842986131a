"""The result of a contact-policy analysis, as the analyzer hands it to the presenters."""

from __future__ import annotations

from dataclasses import dataclass

from domain.policies.bands import BandSummary
from domain.policies.channels import ChannelSummary
from domain.policies.cooldown import CooldownFinding
from domain.policies.fatigue import FatigueFinding
from domain.policies.recommendations import PolicyRecommendation

# The model's features besides one share per channel ("channel:<name>").
FREQUENCY = "frequency"
FREQUENCY_SQUARED = "frequency_squared"
INTERCEPT = "intercept"
CHANNEL_FEATURE_PREFIX = "channel:"


@dataclass(frozen=True)
class TimeSpan:
    """From `start` to `end`, in seconds since the epoch (UTC)."""

    start: float
    end: float


@dataclass(frozen=True)
class InteractionCounts:
    impressions: int
    clicks: int
    conversions: int


@dataclass(frozen=True)
class PolicySummary:
    """What the interaction log held and what of it the analysis used."""

    rows: int
    rows_used: int
    customers: int
    customer_weeks: int
    weeks: int
    date_range: TimeSpan
    window: TimeSpan
    lookback_days: int
    interactions: InteractionCounts
    # The most frequent unmapped interaction types with their row counts, most frequent first.
    unknown_interaction_types: tuple[tuple[str, int], ...]
    unknown_interaction_rows: int
    unparseable_timestamps: int
    missing_timestamps: int
    missing_customer_ids: int
    timestamp_format: str
    outside_lookback: int
    # Distinct offers, when the request names an offer column.
    offers: int | None
    customer_weeks_without_contacts: int


@dataclass(frozen=True)
class ModelSamples:
    train: int
    test: int
    # The customer-weeks were sampled down before the split.
    sampled: bool


@dataclass(frozen=True)
class ConversionModel:
    """Logistic regression of "the customer-week converted" on frequency, frequency squared and the
    channel mix. Coefficients and odds ratios are keyed by feature (the intercept first)."""

    kind: str
    target: str
    features: tuple[str, ...]
    reference_channel: str | None
    coefficients: tuple[tuple[str, float], ...]
    # None where the odds ratio overflows a float.
    odds_ratios: tuple[tuple[str, float | None], ...]
    auc: float
    samples: ModelSamples
    # Where the fitted curve of P(converted) over weekly frequency peaks (at the average mix).
    peak_frequency: int
    conversion_probability_at_peak: float


@dataclass(frozen=True)
class PolicyAnalysisResult:
    summary: PolicySummary
    frequency_bands: tuple[BandSummary, ...]
    fatigue: FatigueFinding
    # Which customer-weeks the fatigue test ran on.
    fatigue_population: str
    channels: tuple[ChannelSummary, ...]
    cooldown: CooldownFinding
    model: ConversionModel | None
    recommended_weekly_cap: int | None
    recommendations: tuple[PolicyRecommendation, ...]
    notes: tuple[str, ...]
    warnings: tuple[str, ...]
