"""Placeholder: replaced by the lead with the GBM training command and outcome."""

from dataclasses import dataclass


@dataclass(frozen=True)
class GbmTrainingSpec:
    pass


@dataclass(frozen=True)
class GbmTrainingOutcome:
    pass
