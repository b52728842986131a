"""Channels: their rates (CTR, CVR, conversions per impression) and each one's own frequency cap."""

from __future__ import annotations

from dataclasses import dataclass

from domain.policies.statistics import Interval, wilson_interval


@dataclass(frozen=True)
class ChannelRates:
    """Rates of one channel; a rate is None without its denominator, an interval None when the rate
    is not a proportion (more conversions than clicks)."""

    channel: str
    impressions: int
    clicks: int
    conversions: int
    ctr: float | None
    ctr_ci: Interval | None
    cvr: float | None
    cvr_ci: Interval | None
    conversions_per_impression: float | None
    conversions_per_impression_ci: Interval | None


def channel_rate_summary(channel: str, impressions: int, clicks: int, conversions: int) -> ChannelRates:
    """Rates of one channel: CTR = clicks/impressions, CVR = conversions/clicks, with Wilson intervals.

    A rate whose numerator exceeds its denominator (e.g. view-through conversions without clicks) is
    still reported, but its interval is null: it is not a proportion.
    """

    def rate(num: int, den: int) -> tuple[float | None, Interval | None]:
        if den == 0:
            return None, None
        return num / den, wilson_interval(num, den) if num <= den else None

    ctr, ctr_ci = rate(clicks, impressions)
    cvr, cvr_ci = rate(conversions, clicks)
    cpi, cpi_ci = rate(conversions, impressions)
    return ChannelRates(channel, impressions, clicks, conversions, ctr, ctr_ci, cvr, cvr_ci, cpi, cpi_ci)


@dataclass(frozen=True)
class ChannelCapFinding:
    """The fatigue test of one channel, on the customer-weeks contacted on that channel only."""

    single_channel_customer_weeks: int
    fatigue_detected: bool
    band: str | None
    fatigued_band: str | None
    p_value: float | None
    weekly_cap: int | None
    # Stricter than the global cap: worth a rule of its own.
    recommended: bool
    reason: str


@dataclass(frozen=True)
class ChannelSummary:
    rates: ChannelRates
    # Share of all impressions.
    share: float
    # 1 = the most conversions per impression.
    rank: int
    # None when channels were not tested one by one (a single channel, or no customer-week).
    frequency_cap: ChannelCapFinding | None = None
