"""The notes and warnings an analysis collects as it goes, in the order its stages find them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Remarks:
    # How the analysis was done (a test left out, a model not fitted) and why.
    notes: list[str] = field(default_factory=list)
    # Problems with the data that the caller should fix or know about.
    warnings: list[str] = field(default_factory=list)
