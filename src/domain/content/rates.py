"""The rates a creative is judged by. A rate without a positive denominator is undefined (None), not
zero: 0 would claim a measured zero."""

from __future__ import annotations


def safe_rate(numerator: float, denominator: float) -> float | None:
    if denominator <= 0:
        return None
    return numerator / denominator


def ctr(clicks: float, impressions: float) -> float | None:
    return safe_rate(clicks, impressions)


def cvr(conversions: float, clicks: float) -> float | None:
    return safe_rate(conversions, clicks)


def rpi(revenue: float, impressions: float) -> float | None:
    return safe_rate(revenue, impressions)
