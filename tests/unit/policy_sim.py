"""A seeded simulator of interaction logs with a known contact-fatigue point and known channel rates.

Each customer gets, in each simulated week, a weekly frequency f drawn uniformly from
1..max_frequency (some weeks skipped). Every contact (an impression) is clicked with probability
ctr(channel) * g(f) * propensity(customer) and a click converts with probability cvr(channel). The
fatigue factor g rises linearly from 1 - rise at one contact a week to 1 at `fatigue_after` contacts,
then falls by a factor `fatigue_decay` per extra contact, so both conversion per contact and expected
conversions per customer-week (f * g(f)) peak at f = fatigue_after: that is the true weekly cap.
`fatigue_after=None` means no fatigue at all (g = 1).

Shared by the unit tests and bench/policies.py, so it is plain numpy + polars and fast (about a
second per million rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl

WEEK = 7 * 86_400
START = 1_704_067_200  # 2024-01-01 00:00 UTC, a Monday: simulated weeks are calendar weeks.
# Contacts stay this far from the week's end so that their clicks and conversions (delays capped at
# an hour each) fall in the same week.
MARGIN = 3 * 3_600


@dataclass(frozen=True)
class SimChannel:
    name: str
    ctr: float
    cvr: float
    weight: float


# Orders differ on purpose: CTR sms > push > email, CVR sms > email > push, CTR*CVR sms > email > push.
DEFAULT_CHANNELS = (
    SimChannel("email", ctr=0.20, cvr=0.30, weight=0.5),
    SimChannel("push", ctr=0.30, cvr=0.10, weight=0.3),
    SimChannel("sms", ctr=0.40, cvr=0.45, weight=0.2),
)

TimestampFormat = Literal["epoch_s", "epoch_ms", "iso"]


@dataclass(frozen=True)
class SimConfig:
    customers: int = 3_000
    weeks: int = 6
    max_frequency: int = 14
    fatigue_after: int | None = 5
    fatigue_decay: float = 0.5
    # Conversion per contact rises by this share from 1 contact to the peak at fatigue_after.
    rise: float = 0.3
    # Per-channel fatigue points (on the customer's weekly frequency); channels absent use fatigue_after.
    channel_fatigue_after: Mapping[str, int | None] = field(default_factory=dict)
    channels: tuple[SimChannel, ...] = DEFAULT_CHANNELS
    # True: each customer is reached on one channel only (per-channel caps become measurable).
    single_channel: bool = False
    # Channel mix that shifts with weekly frequency: a channel's weight is multiplied by
    # exp(tilt * (f - 1) / (max_frequency - 1)), so e.g. {"push": 3.0} makes busy weeks push-heavy.
    tilt: Mapping[str, float] = field(default_factory=dict)
    # Log-normal spread of customer propensity (mean 1): contacts of one customer are correlated.
    heterogeneity: float = 0.3
    skip_week_probability: float = 0.1
    # Extra rows of an interaction type the analysis does not know, per contact.
    dismiss_rate: float = 0.0
    timestamp_format: TimestampFormat = "epoch_s"
    seed: int = 7


def fatigue_factor(frequency: np.ndarray, after: int | None, decay: float, rise: float) -> np.ndarray:
    """1 at the peak (f = after), rising linearly to it from 1 - rise at f = 1, decaying after it."""
    f = frequency.astype(np.float64)
    if after is None:
        return np.ones(f.shape, dtype=np.float64)
    ramp = 1.0 - rise * (after - f) / max(after - 1, 1)
    return np.where(f <= after, ramp, decay ** np.maximum(f - after, 0.0))


def rows_per_customer(config: SimConfig) -> float:
    """Expected interaction rows per customer, to size a run for a target row count."""
    mean_f = (1 + config.max_frequency) / 2
    mean_ctr = sum(c.ctr * c.weight for c in config.channels) / sum(c.weight for c in config.channels)
    # Fatigue lowers clicks; this is an upper-bound estimate, good enough for sizing.
    per_contact = 1 + mean_ctr * 1.3 + config.dismiss_rate
    return config.weeks * (1 - config.skip_week_probability) * mean_f * per_contact


def simulate(config: SimConfig) -> pl.DataFrame:
    """Columns customerId, channel, timestamp, interactionType, in shuffled order."""
    rng = np.random.default_rng(config.seed)
    n_channels = len(config.channels)
    weights = np.array([c.weight for c in config.channels], dtype=np.float64)
    weights /= weights.sum()
    ctr = np.array([c.ctr for c in config.channels])
    cvr = np.array([c.cvr for c in config.channels])

    sigma = config.heterogeneity
    propensity = rng.lognormal(mean=-(sigma**2) / 2, sigma=sigma, size=config.customers)
    home_channel = rng.choice(n_channels, size=config.customers, p=weights)

    cw_customer = np.repeat(np.arange(config.customers), config.weeks)
    cw_week = np.tile(np.arange(config.weeks), config.customers)
    kept = rng.random(cw_customer.size) >= config.skip_week_probability
    cw_customer, cw_week = cw_customer[kept], cw_week[kept]
    cw_frequency = rng.integers(1, config.max_frequency + 1, size=cw_customer.size)

    customer = np.repeat(cw_customer, cw_frequency)
    week = np.repeat(cw_week, cw_frequency)
    frequency = np.repeat(cw_frequency, cw_frequency)
    n = customer.size
    if config.single_channel:
        channel = home_channel[customer]
    elif config.tilt:
        channel = np.empty(n, dtype=np.int64)
        tilt = np.array([config.tilt.get(c.name, 0.0) for c in config.channels])
        for f in range(1, config.max_frequency + 1):
            mask = frequency == f
            w = weights * np.exp(tilt * (f - 1) / max(config.max_frequency - 1, 1))
            channel[mask] = rng.choice(n_channels, size=int(mask.sum()), p=w / w.sum())
    else:
        channel = rng.choice(n_channels, size=n, p=weights)
    t_contact = START + week * WEEK + rng.uniform(0, WEEK - MARGIN, size=n)

    g = np.empty(n, dtype=np.float64)
    for i, ch in enumerate(config.channels):
        mask = channel == i
        after = config.channel_fatigue_after.get(ch.name, config.fatigue_after)
        g[mask] = fatigue_factor(frequency[mask], after, config.fatigue_decay, config.rise)
    p_click = np.minimum(1.0, ctr[channel] * g * propensity[customer])
    clicked = rng.random(n) < p_click
    converted = clicked & (rng.random(n) < cvr[channel])
    t_click = t_contact + np.minimum(rng.exponential(300.0, size=n), 3_600.0)
    t_conversion = t_click + np.minimum(rng.exponential(1_800.0, size=n), 3_600.0)
    dismissed = rng.random(n) < config.dismiss_rate

    parts = [
        (customer, channel, t_contact, 0),
        (customer[clicked], channel[clicked], t_click[clicked], 1),
        (customer[converted], channel[converted], t_conversion[converted], 2),
        (customer[dismissed], channel[dismissed], t_contact[dismissed] + 60.0, 3),
    ]
    all_customer = np.concatenate([p[0] for p in parts])
    all_channel = np.concatenate([p[1] for p in parts])
    all_time = np.concatenate([p[2] for p in parts])
    all_type = np.concatenate([np.full(p[0].size, p[3], dtype=np.int8) for p in parts])
    order = rng.permutation(all_customer.size)

    type_names = pl.Series(["impression", "click", "conversion", "dismiss"])
    channel_names = pl.Series([c.name for c in config.channels])
    frame = pl.DataFrame(
        {
            "customerId": pl.Series(all_customer[order]).cast(pl.Utf8).str.zfill(7).str.replace(r"^", "c"),
            "channel": channel_names.gather(all_channel[order]),
            "timestamp": all_time[order],
            "interactionType": type_names.gather(all_type[order]),
        }
    )
    return frame.with_columns(_format_time(pl.col("timestamp"), config.timestamp_format))


def _format_time(seconds: pl.Expr, fmt: TimestampFormat) -> pl.Expr:
    if fmt == "epoch_s":
        return seconds
    millis = (seconds * 1000).round(0).cast(pl.Int64)
    if fmt == "epoch_ms":
        return millis
    return pl.from_epoch(millis, time_unit="ms").dt.to_string("%Y-%m-%dT%H:%M:%S%.3fZ")


def true_cap(config: SimConfig) -> int | None:
    return config.fatigue_after
