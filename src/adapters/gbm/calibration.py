"""Post-calibration of LightGBM's score, fitted on held-out rows only (the validation split, or the
out-of-fold scores of fold models), and measured on rows the calibrator did not see.

isotonic: scikit-learn's IsotonicRegression of the label on LightGBM's probability, stored as its
breakpoints; platt: an unpenalised logistic regression of the label on the raw margin, fitted here by
Newton's method (IRLS) to convergence, so the fit is the exact maximum-likelihood one rather than a
solver's approximation of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from adapters.gbm.cross_validation import OutOfFold
from adapters.gbm.fitting import Scored
from adapters.gbm.metrics import brier, expected_calibration_error
from domain.errors import InsufficientData, field_error
from domain.gbm.training import MIN_CALIBRATION_ROWS, Calibration, CalibrationMetrics

ISOTONIC = "isotonic"
PLATT = "platt"
# Folds the calibrator is cross-fitted over to measure it: fewer when a class has fewer rows.
MEASURE_FOLDS = 5
_NEWTON_STEPS = 100
_NEWTON_TOLERANCE = 1e-12


@dataclass(frozen=True)
class HeldOut:
    """The rows a calibrator may be fitted on, with the trees' scores for them: LightGBM's
    probability and raw margin, from a model that never trained on them."""

    labels: np.ndarray
    probability: np.ndarray
    raw_margin: np.ndarray | None  # what Platt fits on; isotonic needs none
    source: str  # "validation" or "cross_fitted"

    def margin(self, rows: np.ndarray) -> np.ndarray | None:
        return None if self.raw_margin is None else self.raw_margin[rows]


@dataclass(frozen=True)
class FittedCalibration:
    """`block` is modelState.calibration, None when the fit is not applied (`warning` says why);
    `out_of_fold` the calibrated score of each held-out row by a calibrator that did not see it."""

    block: dict[str, Any] | None
    metrics: CalibrationMetrics | None
    out_of_fold: np.ndarray | None
    warning: str | None = None


def check_held_out(labels: np.ndarray, source: str) -> None:
    """Refuses a calibration the held-out rows cannot support, before any fold model is trained."""
    rows = len(labels)
    positives = int(np.count_nonzero(labels))
    if rows < MIN_CALIBRATION_ROWS or min(positives, rows - positives) < 2:
        where = "validation rows" if source == "validation" else "rows"
        raise InsufficientData(
            f"calibration needs at least {MIN_CALIBRATION_ROWS} held-out rows with 2 of each class; "
            f"the {rows} {where} hold {positives} positive(s): send more rows"
            + (" or raise `validation_fraction`" if source == "validation" else ""),
            [field_error("calibration", f"{rows} held-out rows, {positives} positive")],
        )


def fit_isotonic(probability: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
    model.fit(probability, labels)
    return np.asarray(model.X_thresholds_, dtype=np.float64), np.asarray(
        model.y_thresholds_, dtype=np.float64
    )


def fit_platt(raw_margin: np.ndarray, labels: np.ndarray) -> tuple[float, float, bool]:
    """(a, b, converged) maximising the likelihood of labels ~ sigmoid(a x margin + b): Newton steps,
    halved while they lower the likelihood. Not converged when the rows are separable (a grows
    without bound) or the margin is constant (the Hessian is singular)."""
    design = np.column_stack([raw_margin, np.ones_like(raw_margin)])
    mean = float(np.mean(labels))
    weights = np.array([0.0, np.log(mean / (1.0 - mean))])
    likelihood = _log_likelihood(design, labels, weights)
    for _ in range(_NEWTON_STEPS):
        p = _sigmoid(design @ weights)
        gradient = design.T @ (labels - p)
        hessian = (design * (p * (1.0 - p))[:, None]).T @ design
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return float(weights[0]), float(weights[1]), False
        if not np.all(np.isfinite(step)):
            return float(weights[0]), float(weights[1]), False
        scale = 1.0
        while scale > 1e-10:
            candidate = weights + scale * step
            candidate_likelihood = _log_likelihood(design, labels, candidate)
            if candidate_likelihood >= likelihood:
                break
            scale /= 2.0
        else:
            # No step raises the likelihood: at the maximum to the last digit.
            return float(weights[0]), float(weights[1]), True
        weights, likelihood = candidate, candidate_likelihood
        if np.max(np.abs(scale * step)) <= _NEWTON_TOLERANCE * (1.0 + np.max(np.abs(weights))):
            return float(weights[0]), float(weights[1]), True
    return float(weights[0]), float(weights[1]), False


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # As LightGBM and the scorers: exp overflowing to inf gives 0.
    with np.errstate(over="ignore"):
        return np.asarray(1.0 / (1.0 + np.exp(-z)))


def _log_likelihood(design: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    z = design @ weights
    # log sigmoid(z) = -log(1 + exp(-z)), stably for both signs.
    return float(np.sum(labels * -np.logaddexp(0.0, -z) + (1.0 - labels) * -np.logaddexp(0.0, z)))


def calibrated_scores(
    block: dict[str, Any], probability: np.ndarray, raw_margin: np.ndarray | None
) -> np.ndarray:
    """The numpy batch path of the scorers' calibration (domain.gbm.calibration.calibrate), the same
    expression in the same order: isotonic agrees to the last bit, Platt to numpy's exp against the C
    library's (an ulp, tested). Platt needs `raw_margin`."""
    if block["method"] == PLATT:
        assert raw_margin is not None
        return _sigmoid(block["a"] * raw_margin + block["b"])
    x = np.asarray(block["x"], dtype=np.float64)
    y = np.asarray(block["y"], dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    if len(x) == 1:
        return np.full_like(p, y[0])
    i = np.clip(np.searchsorted(x, p, side="right") - 1, 0, len(x) - 2)
    inside = y[i] + (p - x[i]) * ((y[i + 1] - y[i]) / (x[i + 1] - x[i]))
    q = np.where(p <= x[0], y[0], np.where(p >= x[-1], y[-1], inside))
    return np.clip(q, 0.0, 1.0)


def _fit_block(method: Calibration, held: HeldOut, rows: np.ndarray) -> tuple[dict[str, Any], bool]:
    """The block fitted on `rows` of the held-out rows, and whether it may be applied."""
    labels = held.labels[rows]
    if method is Calibration.ISOTONIC:
        x, y = fit_isotonic(held.probability[rows], labels)
        return {"method": ISOTONIC, "x": x.tolist(), "y": y.tolist()}, True
    margin = held.margin(rows)
    assert margin is not None  # the trainer predicts the margins when Platt is asked
    a, b, converged = fit_platt(margin, labels)
    return {"method": PLATT, "a": a, "b": b}, converged and a > 0 and np.isfinite(b)


def calibrate(method: Calibration, held: HeldOut, seed: int) -> FittedCalibration:
    """Fits the stored calibrator on every held-out row, and measures calibration out-of-fold: the
    held-out rows in (at most) 5 stratified folds, each scored by a calibrator fitted on the others."""
    check_held_out(held.labels, held.source)
    everything = np.arange(len(held.labels))
    block, usable = _fit_block(method, held, everything)
    if not usable:
        return FittedCalibration(
            block=None,
            metrics=None,
            out_of_fold=None,
            warning=(
                f"`calibration` platt was not applied: the fit on the {len(everything)} held-out rows "
                f"gives a slope of {block['a']:.3g} (the trees rank those rows backwards, or they "
                "are separable); the score is LightGBM's own"
            ),
        )
    positives = int(np.count_nonzero(held.labels))
    folds = min(MEASURE_FOLDS, positives, len(everything) - positives)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out_of_fold = np.empty(len(everything))
    for fit_rows, scored_rows in splitter.split(everything, held.labels):
        fold_block, _ = _fit_block(method, held, fit_rows)
        out_of_fold[scored_rows] = calibrated_scores(
            fold_block, held.probability[scored_rows], held.margin(scored_rows)
        )
    metrics = CalibrationMetrics(
        method=block["method"],
        fitted_on=len(everything),
        measured_on=len(everything),
        brier_before=brier(held.labels, held.probability),
        brier_after=brier(held.labels, out_of_fold),
        ece_before=expected_calibration_error(held.labels, held.probability),
        ece_after=expected_calibration_error(held.labels, out_of_fold),
    )
    stored = {"method": block.pop("method"), "fitted_on": len(everything), "source": held.source, **block}
    return FittedCalibration(block=stored, metrics=metrics, out_of_fold=out_of_fold)


def calibrate_model(
    method: Calibration, labels: np.ndarray, scored: Scored, folded: OutOfFold | None, seed: int
) -> FittedCalibration:
    """On the validation rows the returned model scored; without a split, on the fold models'
    out-of-fold scores of every row (the returned model saw them all)."""
    if scored.source == "validation":
        held = HeldOut(labels[scored.rows], scored.probability, scored.raw_margin, "validation")
    else:
        assert folded is not None, "the trainer trains the fold models when there is no split"
        held = HeldOut(labels, folded.probability, folded.raw_margin, "cross_fitted")
    return calibrate(method, held, seed)
