"""`modelState.calibration`: the map from LightGBM's probability to a calibrated one, and its checks.

Two methods, both fitted at training time on rows the trees never trained on:

- `isotonic`: breakpoints `x` (strictly increasing) -> `y` (non-decreasing), both in [0, 1],
  interpolated linearly and held flat outside `[x[0], x[-1]]` (scikit-learn's `IsotonicRegression`
  with `out_of_bounds="clip"`); it reads the uncalibrated probability.
- `platt`: `1 / (1 + exp(-(a * raw_margin + b)))` with `a > 0`, so the ranking never changes; it
  reads the raw margin.

`calibrate` writes the interpolation as one expression, `y[i] + (p - x[i]) * ((y[i+1] - y[i]) /
(x[i+1] - x[i]))`: the JavaScript scorer and the batch scorer evaluate the same operations in the same
order, so all three agree to the last bit.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from typing import Any, Final, TypeGuard

from domain.errors import ValidationFailed
from domain.gbm.errors import unsupported

ISOTONIC: Final = "isotonic"
PLATT: Final = "platt"
METHODS: Final = (ISOTONIC, PLATT)
SOURCES: Final = frozenset({"validation", "cross_fitted"})
_FIELD: Final = "calibration"


def _refuse(message: str) -> ValidationFailed:
    return unsupported(f"calibration: {message}", _FIELD)


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_calibration(block: Any) -> None:
    """Raise `UnsupportedModel` unless `block` is a calibration both scorers apply exactly."""
    if not isinstance(block, Mapping):
        raise _refuse("must be an object")
    method = block.get("method")
    if method not in METHODS:
        raise _refuse(f"method {method!r} is not one of {list(METHODS)}")
    fitted_on = block.get("fitted_on")
    if not isinstance(fitted_on, int) or isinstance(fitted_on, bool) or fitted_on < 0:
        raise _refuse("fitted_on must be a non-negative integer")
    if block.get("source") not in SOURCES:
        raise _refuse(f"source {block.get('source')!r} is not one of {sorted(SOURCES)}")
    if method == PLATT:
        a, b = block.get("a"), block.get("b")
        if not _finite(a) or a <= 0:
            raise _refuse("platt needs a finite a > 0 (a <= 0 would reverse the ranking)")
        if not _finite(b):
            raise _refuse("platt needs a finite b")
        return
    xs, ys = block.get("x"), block.get("y")
    if not isinstance(xs, list) or not isinstance(ys, list) or not xs or len(xs) != len(ys):
        raise _refuse("isotonic needs x and y: non-empty lists of the same length")
    if not all(_finite(v) and 0.0 <= v <= 1.0 for v in xs + ys):
        raise _refuse("isotonic x and y must be finite numbers in [0, 1]")
    if any(later <= earlier for earlier, later in itertools.pairwise(xs)):
        raise _refuse("isotonic x must be strictly increasing")
    if any(later < earlier for earlier, later in itertools.pairwise(ys)):
        raise _refuse("isotonic y must be non-decreasing")


def calibrate(block: Mapping[str, Any], probability: float, raw_margin: float) -> float:
    """The calibrated score of one row from LightGBM's probability and raw margin (block validated)."""
    if block["method"] == PLATT:
        try:
            return 1.0 / (1.0 + math.exp(-(block["a"] * raw_margin + block["b"])))
        except OverflowError:
            return 0.0
    xs: list[float] = block["x"]
    ys: list[float] = block["y"]
    if probability <= xs[0]:
        return min(1.0, max(0.0, float(ys[0])))
    if probability >= xs[-1]:
        return min(1.0, max(0.0, float(ys[-1])))
    i = bisect.bisect_right(xs, probability) - 1
    value = ys[i] + (probability - xs[i]) * ((ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]))
    return min(1.0, max(0.0, value))
