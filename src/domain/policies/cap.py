"""The weekly cap: the frequency that maximises conversions per customer-week without fatigue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.policies.bands import BandStats
from domain.policies.fatigue import FatigueResult
from domain.policies.spec import ContactCaps


@dataclass(frozen=True)
class CapChoice:
    """The recommended weekly cap (None: the data does not support one) and why."""

    cap: int | None
    band: BandStats | None
    fatigue_detected: bool
    reason: str


def choose_weekly_cap(
    stats: Sequence[BandStats], fatigue: FatigueResult, caps: ContactCaps, *, min_samples: int
) -> CapChoice:
    """The frequency that maximises conversions per customer-week without significant fatigue.

    With fatigue: among the eligible bands before the fatigued one, the band with the most
    conversions per customer-week; the cap is its upper bound. Without fatigue the configured weekly
    cap stands, but only when the data reaches it (a band at or above the cap has enough samples):
    otherwise nothing is known about frequencies near the cap and no cap is recommended. Never above
    the configured weekly cap.
    """
    if not fatigue.testable:
        return CapChoice(None, None, False, fatigue.reason)
    eligible = [s for s in stats if s.customer_weeks >= min_samples and s.contacts > 0]
    if fatigue.detected and fatigue.fatigued is not None:
        before = [s for s in eligible if s.band.index < fatigue.fatigued.band.index]
        best = max(before, key=lambda s: (s.conversions_per_customer_week, s.band.index))
        upper = best.band.upper if best.band.upper is not None else caps.weekly
        return CapChoice(min(upper, caps.weekly), best, True, fatigue.reason)
    reaching = [s for s in eligible if s.band.upper is None or s.band.upper >= caps.weekly]
    if not reaching:
        highest = eligible[-1]
        return CapChoice(
            None,
            None,
            False,
            f"No significant fatigue up to {highest.band.label} contacts/week, but fewer than "
            f"{min_samples} customer-weeks reach the configured cap of {caps.weekly}/week: the data "
            "cannot support a cap between them.",
        )
    return CapChoice(caps.weekly, reaching[0], False, fatigue.reason)
