"""Defaults and bounds of request fields, declared once, on the spec dataclasses.

A spec field declared with `bounded(...)` carries its default and its range; `bound_problems` checks a
spec against them (one detail per field, named by its spec path), and the contract test
tests/contract/test_spec_bounds.py holds openapi.yaml's defaults, minimums and maximums to them, so
the contract cannot drift from the rules that run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from domain.errors import field_error

BOUNDS = "bounds"


@dataclass(frozen=True)
class Bounds:
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None

    def problem(self, value: float) -> str | None:
        """Why `value` is out of range (in words a caller reads), or None when it is within."""
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        low_ok = (self.minimum is None or value >= self.minimum) and (
            self.exclusive_minimum is None or value > self.exclusive_minimum
        )
        high_ok = (self.maximum is None or value <= self.maximum) and (
            self.exclusive_maximum is None or value < self.exclusive_maximum
        )
        if low_ok and high_ok:
            return None
        return f"must be {self.describe()}"

    def describe(self) -> str:
        low = (
            f">= {_number(self.minimum)}"
            if self.minimum is not None
            else f"> {_number(self.exclusive_minimum)}"
            if self.exclusive_minimum is not None
            else None
        )
        high = (
            f"<= {_number(self.maximum)}"
            if self.maximum is not None
            else f"< {_number(self.exclusive_maximum)}"
            if self.exclusive_maximum is not None
            else None
        )
        if self.minimum is not None and self.maximum is not None:
            return f"between {_number(self.minimum)} and {_number(self.maximum)}"
        return " and ".join(part for part in (low, high) if part) or "any number"


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


def bounded(
    default: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    exclusive_maximum: float | None = None,
) -> Any:
    """A spec field with its default and its range (each bound optional)."""
    bounds = Bounds(minimum, maximum, exclusive_minimum, exclusive_maximum)
    return dataclasses.field(default=default, metadata={BOUNDS: bounds})


def bound_problems(spec: Any, prefix: str = "") -> list[dict[str, Any]]:
    """One detail per bounded field of `spec` (and of its nested specs) whose value is out of range.
    Fields left at None (optional) are not checked."""
    problems: list[dict[str, Any]] = []
    for item in dataclasses.fields(spec):
        value = getattr(spec, item.name)
        path = f"{prefix}{item.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            problems.extend(bound_problems(value, f"{path}."))
            continue
        bounds = item.metadata.get(BOUNDS)
        if bounds is None or value is None or isinstance(value, bool):
            continue
        if isinstance(value, int | float) and (reason := bounds.problem(value)) is not None:
            problems.append(field_error(path, reason))
    return problems
