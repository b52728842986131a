"""Placeholder: the helper building this analysis replaces this module."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PolicySpec:
    pass
