"""Per-channel caps: fatigue tested channel by channel, and the global cap measured again when
channels tire at different frequencies."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from adapters.policies.band_tables import band_stats, band_table, to_band_stats
from adapters.policies.customer_weeks import CustomerWeeks
from domain.policies.bands import BandStats
from domain.policies.cap import CapChoice, choose_weekly_cap
from domain.policies.channels import ChannelCapFinding, ChannelSummary
from domain.policies.fatigue import FatigueResult, detect_fatigue
from domain.policies.spec import PolicySpec


@dataclass(frozen=True)
class ChannelFatigue:
    channel: str
    choice: CapChoice
    fatigue: FatigueResult
    # Customer-weeks contacted on this channel only: the population of the test.
    customer_weeks: int


def fatigue_test(stats: Sequence[BandStats], spec: PolicySpec) -> tuple[FatigueResult, CapChoice]:
    """The fatigue test and the cap it supports, at the request's alpha and minimum band size."""
    fatigue = detect_fatigue(stats, alpha=spec.alpha, min_samples=spec.min_samples_per_band)
    return fatigue, choose_weekly_cap(stats, fatigue, spec.caps, min_samples=spec.min_samples_per_band)


def channel_fatigue(
    weeks: CustomerWeeks,
    channels: Sequence[ChannelSummary],
    channel_codes: Mapping[str, int],
    spec: PolicySpec,
) -> dict[str, ChannelFatigue]:
    """Fatigue per channel, on the customer-weeks contacted on that channel only.

    Weeks that mix channels are left out: there a channel's own frequency is confounded with the
    contacts on the other channels.
    """
    if len(channels) < 2 or weeks.frame.height == 0:
        return {}
    table = band_table(weeks.frame.filter(pl.col("single_channel")), by="only_channel")
    found = {}
    for entry in channels:
        name = entry.rates.channel
        stats = to_band_stats(table.filter(pl.col("only_channel") == channel_codes[name]), spec.bands)
        fatigue, choice = fatigue_test(stats, spec)
        found[name] = ChannelFatigue(name, choice, fatigue, sum(s.customer_weeks for s in stats))
    return found


def within_channel_caps(
    weeks: CustomerWeeks,
    per_channel: Mapping[str, ChannelFatigue],
    model_channels: Sequence[str],
    spec: PolicySpec,
) -> tuple[FatigueResult, CapChoice] | None:
    """The global fatigue test again, on the customer-weeks that respect every channel cap.

    Only when channels fatigue at different frequencies: then a channel that tires early (say
    SMS) drags the pooled curve down at a frequency the other channels tolerate, and the global
    cap should be measured as if the channel caps were in force. None when that does not apply
    or does not yield a cap.
    """
    caps = {
        name: found.choice.cap
        for name, found in per_channel.items()
        if found.choice.fatigue_detected and found.choice.cap is not None and name in model_channels
    }
    if len(set(caps.values())) < 2:
        return None
    # Only the channels that tire earlier than the most tolerant one are held to their caps.
    loosest = max(caps.values())
    within = pl.lit(True)
    for name, cap in caps.items():
        if cap < loosest:
            within = within & (pl.col(f"ch{list(model_channels).index(name)}") <= cap)
    stats = band_stats(weeks.frame.filter(within), spec.bands, weeks.strata)
    fatigue, choice = fatigue_test(stats, spec)
    return (fatigue, choice) if choice.cap is not None else None


def with_channel_caps(
    channels: Sequence[ChannelSummary],
    per_channel: Mapping[str, ChannelFatigue],
    global_choice: CapChoice,
    spec: PolicySpec,
) -> tuple[list[ChannelSummary], list[ChannelFatigue]]:
    """Each channel's finding into its entry, and the channels whose cap is worth a rule: fatigue
    detected and a cap stricter than the global one (else the global cap covers it)."""
    reference_cap = global_choice.cap if global_choice.cap is not None else spec.caps.weekly
    entries = []
    stricter = []
    for entry in channels:
        found = per_channel.get(entry.rates.channel)
        if found is None:
            entries.append(entry)
            continue
        choice, fatigue = found.choice, found.fatigue
        recommended = choice.fatigue_detected and choice.cap is not None and choice.cap < reference_cap
        finding = ChannelCapFinding(
            single_channel_customer_weeks=found.customer_weeks,
            fatigue_detected=fatigue.detected,
            band=fatigue.last_good.band.label if fatigue.detected and fatigue.last_good else None,
            fatigued_band=fatigue.fatigued.band.label if fatigue.fatigued else None,
            p_value=fatigue.test.p_value if fatigue.detected and fatigue.test else None,
            weekly_cap=choice.cap if choice.fatigue_detected else None,
            recommended=recommended,
            reason=fatigue.reason,
        )
        entries.append(dataclasses.replace(entry, frequency_cap=finding))
        if recommended:
            stricter.append(found)
    return entries, stricter
