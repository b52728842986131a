"""How a raw row's values read: as a number of a numeric input, as the category of a categorical one.
Shared by the scorers' encoding and the drift reference, so a value lands in the same place in both."""

from __future__ import annotations

import math
import numbers
from typing import Any, Final

from domain.errors import ValidationFailed, field_error

# Strings accepted in place of non-finite numbers, because JSON has no NaN or infinity.
_NON_FINITE: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def category_key(value: Any) -> str | None:
    """The category string a raw value is matched as: strings as-is, booleans `true`/`false`,
    integral numbers as decimal integers (`3` and `3.0` -> `"3"`), anything else matches nothing."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isfinite(number) and number == math.floor(number) and abs(number) < 2.0**53:
            return str(int(number))
    return None


def as_number(value: Any, field: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except OverflowError as exc:
            raise ValidationFailed(
                f"{field}: {value} is outside the float64 range", [field_error(field, "out of range")]
            ) from exc
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    message = f"{field}: expected a number, null, 'NaN', 'Infinity' or '-Infinity', got {value!r:.40}"
    raise ValidationFailed(message, [field_error(field, message)])
