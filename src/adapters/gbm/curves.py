"""The curves a training report draws, in numpy, on the rows the metrics are measured on."""

from __future__ import annotations

import numpy as np

from adapters.gbm.metrics import ECE_BINS
from domain.gbm.training import ReliabilityCurve, TrainingCurves

MAX_ROC_POINTS = 101


def roc_points(y: np.ndarray, p: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(fpr, tpr) at every distinct score from the highest down, from (0, 0) to (1, 1) (scikit-learn's
    roc_curve without dropping points), thinned evenly to at most MAX_ROC_POINTS, ends kept. Without
    both classes the diagonal."""
    positives = float(np.count_nonzero(y))
    negatives = float(len(y)) - positives
    if positives == 0 or negatives == 0:
        return (0.0, 1.0), (0.0, 1.0)
    order = np.argsort(-p, kind="stable")
    ranked, labels = p[order], y[order]
    # The last row of each run of equal scores: a threshold admits a whole run at once.
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    tps = np.cumsum(labels)[ends]
    fps = (ends + 1) - tps
    fpr = np.concatenate(([0.0], fps / negatives))
    tpr = np.concatenate(([0.0], tps / positives))
    if len(fpr) > MAX_ROC_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, MAX_ROC_POINTS).round().astype(np.int64))
        fpr, tpr = fpr[keep], tpr[keep]
    return tuple(fpr.tolist()), tuple(tpr.tolist())


def reliability(y: np.ndarray, p: np.ndarray) -> ReliabilityCurve:
    """Mean score and share of positives per non-empty bin of the ECE's 10 equal-width bins."""
    bins = np.minimum(np.floor(p * ECE_BINS), ECE_BINS - 1).astype(np.int64)
    count = np.bincount(bins, minlength=ECE_BINS)
    used = count > 0
    predicted = np.bincount(bins, weights=p, minlength=ECE_BINS)[used] / count[used]
    observed = np.bincount(bins, weights=y, minlength=ECE_BINS)[used] / count[used]
    return ReliabilityCurve(
        predicted=tuple(predicted.tolist()),
        observed=tuple(observed.tolist()),
        count=tuple(count[used].tolist()),
    )


def training_curves(y: np.ndarray, p: np.ndarray, calibrated: np.ndarray | None) -> TrainingCurves:
    fpr, tpr = roc_points(y, p)
    return TrainingCurves(
        roc_fpr=fpr,
        roc_tpr=tpr,
        calibration=reliability(y, p),
        calibrated=None if calibrated is None else reliability(y, calibrated),
    )
