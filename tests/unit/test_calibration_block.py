"""`modelState.calibration`: applied exactly as documented, refused when malformed, version rules."""

from __future__ import annotations

import math

import pytest

from domain.gbm.calibration import calibrate, validate_calibration
from domain.gbm.model_state import UnsupportedModel

ISOTONIC = {
    "method": "isotonic",
    "fitted_on": 10,
    "source": "validation",
    "x": [0.2, 0.4, 0.8],
    "y": [0.1, 0.5, 0.5],
}
PLATT = {"method": "platt", "fitted_on": 10, "source": "cross_fitted", "a": 2.0, "b": -1.0}


def test_isotonic_interpolates_between_breakpoints_and_holds_flat_outside() -> None:
    assert calibrate(ISOTONIC, 0.0, 0.0) == 0.1
    assert calibrate(ISOTONIC, 0.2, 0.0) == 0.1
    assert calibrate(ISOTONIC, 0.3, 0.0) == pytest.approx(0.3, abs=1e-15)
    assert calibrate(ISOTONIC, 0.4, 0.0) == 0.5
    assert calibrate(ISOTONIC, 0.6, 0.0) == 0.5
    assert calibrate(ISOTONIC, 0.99, 0.0) == 0.5
    single = {**ISOTONIC, "x": [0.5], "y": [0.25]}
    assert calibrate(single, 0.1, 0.0) == calibrate(single, 0.9, 0.0) == 0.25


def test_platt_reads_the_raw_margin_not_the_probability() -> None:
    assert calibrate(PLATT, 0.99, 0.5) == pytest.approx(0.5, abs=1e-15)
    assert calibrate(PLATT, 0.5, 1.0) == pytest.approx(1 / (1 + math.exp(-1.0)), abs=1e-15)
    assert calibrate(PLATT, 0.0, -1e308) == 0.0  # exp overflow reads as LightGBM's sigmoid does


@pytest.mark.parametrize(
    ("block", "words"),
    [
        ({**ISOTONIC, "x": [0.4, 0.2, 0.8]}, "strictly increasing"),
        ({**ISOTONIC, "y": [0.5, 0.1, 0.6]}, "non-decreasing"),
        ({**ISOTONIC, "y": [0.1, 0.5]}, "same length"),
        ({**ISOTONIC, "x": [0.2, 0.4, 1.5]}, r"in \[0, 1\]"),
        ({**PLATT, "a": -1.0}, "a > 0"),
        ({**PLATT, "b": math.inf}, "finite b"),
        ({**PLATT, "method": "beta"}, "method 'beta'"),
        ({**PLATT, "fitted_on": -3}, "fitted_on"),
        ({**PLATT, "source": "training"}, "source"),
    ],
)
def test_a_malformed_calibration_is_refused_naming_the_problem(block: dict[str, object], words: str) -> None:
    with pytest.raises(UnsupportedModel, match=words):
        validate_calibration(block)
