"""The rates a creative is judged by. A rate without a positive denominator is undefined (None), not
zero: 0 would claim a measured zero. So is a rate beyond the double range (2**53 conversions over
1e-320 clicks): no number can report it."""

from __future__ import annotations

import math


def safe_rate(numerator: float, denominator: float) -> float | None:
    if denominator <= 0:
        return None
    rate = numerator / denominator
    return rate if math.isfinite(rate) else None


def ctr(clicks: float, impressions: float) -> float | None:
    return safe_rate(clicks, impressions)


def cvr(conversions: float, clicks: float) -> float | None:
    return safe_rate(conversions, clicks)


def rpi(revenue: float, impressions: float) -> float | None:
    return safe_rate(revenue, impressions)
