"""Step 7: the findings as recommendations, and the notes that say what could not be shown."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.policies.channel_caps import ChannelFatigue
from adapters.policies.remarks import Remarks
from domain.policies.cap import CapChoice
from domain.policies.channels import ChannelSummary
from domain.policies.cooldown import CooldownResult
from domain.policies.fatigue import FatigueResult
from domain.policies.recommendations import (
    ModelEvidence,
    PolicyRecommendation,
    cooldown_recommendation,
    frequency_cap_recommendation,
)
from domain.policies.result import ConversionModel, PolicySummary
from domain.policies.spec import PolicySpec


def recommendations(
    spec: PolicySpec,
    choice: CapChoice,
    fatigue: FatigueResult,
    cooldown: CooldownResult,
    cooldown_scope: int | None,
    channel_caps: Sequence[ChannelFatigue],
    model: ConversionModel | None,
) -> list[PolicyRecommendation]:
    """The global cap, then each channel cap stricter than it, then the cooldown (each when shown)."""
    found = []
    overall = frequency_cap_recommendation(
        choice,
        fatigue,
        spec.caps,
        min_samples=spec.min_samples_per_band,
        model=ModelEvidence(model.peak_frequency, model.auc) if model else None,
    )
    if overall is not None:
        found.append(overall)
    for item in channel_caps:
        rec = frequency_cap_recommendation(
            item.choice,
            item.fatigue,
            spec.caps,
            min_samples=spec.min_samples_per_band,
            channel=item.channel,
            population="customer-weeks contacted on this channel only",
        )
        if rec is not None:
            found.append(rec)
    rec = cooldown_recommendation(
        cooldown,
        spec.caps,
        min_samples=spec.min_samples_per_band,
        population=(
            f"contacts of customer-weeks with at most {cooldown_scope} contacts"
            if cooldown_scope is not None
            else None
        ),
    )
    if rec is not None:
        found.append(rec)
    return found


def data_notes(
    spec: PolicySpec,
    summary: PolicySummary,
    channels: Sequence[ChannelSummary],
    fatigue: FatigueResult,
    choice: CapChoice,
    cooldown: CooldownResult,
    recommended: Sequence[PolicyRecommendation],
    remarks: Remarks,
) -> None:
    interactions = summary.interactions
    if interactions.conversions == 0:
        remarks.warnings.append(
            "No conversions in the lookback window (conversion values: "
            f"{list(spec.conversion_values)}): conversion rates are all zero, so no policy can be "
            "derived."
        )
    if interactions.clicks == 0:
        remarks.warnings.append(
            f"No clicks in the lookback window (click values: {list(spec.click_values)}): CTR is zero "
            "and CVR is undefined."
        )
    if len(channels) == 1:
        remarks.warnings.append(
            f"Only one channel ({channels[0].rates.channel!r}): channels cannot be compared and the model "
            "has no channel effect."
        )
    if 0 < summary.customer_weeks < spec.min_samples_per_band * 2:
        remarks.warnings.append(
            f"Only {summary.customer_weeks:,} customer-weeks: too few for per-band statistics "
            f"(`min_samples_per_band` {spec.min_samples_per_band})."
        )
    if choice.cap is None:
        remarks.notes.append(f"No frequency cap recommended: {choice.reason}")
    elif not choice.fatigue_detected:
        remarks.notes.append(f"No fatigue detected: {fatigue.reason}")
    if cooldown.days is None:
        remarks.notes.append(f"No cooldown recommended: {cooldown.reason}")
    if not recommended:
        remarks.notes.append("No recommendation: the data does not support a policy change with confidence.")
