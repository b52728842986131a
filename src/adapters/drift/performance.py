"""The model's score on labelled new rows: AUC and logloss as training reports them
(adapters/gbm/metrics.py), and the expected calibration error of formats.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from adapters.gbm.encoding import label_vector
from adapters.gbm.metrics import log_loss, roc_auc
from domain.drift.result import Metrics, Performance

ECE_BINS = 10


def expected_calibration_error(y: np.ndarray, p: np.ndarray) -> float:
    """10 equal-width bins on [0, 1], bin = min(floor(p * 10), 9); the row-weighted mean of
    |mean(y) - mean(p)| over the bins."""
    bins = np.minimum(np.floor(p * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    rows = np.bincount(bins, minlength=ECE_BINS).astype(np.float64)
    positives = np.bincount(bins, weights=y, minlength=ECE_BINS)
    predicted = np.bincount(bins, weights=p, minlength=ECE_BINS)
    filled = rows > 0
    gaps = np.abs(positives[filled] / rows[filled] - predicted[filled] / rows[filled])
    return float(np.sum(rows[filled] / len(y) * gaps))


def labelled_performance(
    frame: pl.DataFrame, label: str, score: np.ndarray, reference: Mapping[str, Any]
) -> tuple[Performance | None, int]:
    """The performance on the rows whose label is known, and how many rows had none."""
    column = frame.get_column(label)
    known = column.is_not_null().to_numpy()
    if column.dtype.is_float():  # NaN is an unknown outcome too
        known &= ~column.is_nan().fill_null(False).to_numpy()
    unlabelled = int(len(known) - known.sum())
    if not known.any():
        return None, unlabelled
    y = label_vector(frame.filter(pl.Series(known)), label)
    p = score[known]
    metrics = Metrics(auc=roc_auc(y, p), logloss=log_loss(y, p), ece=expected_calibration_error(y, p))
    return Performance(rows=len(y), metrics=metrics, training=training_metrics(reference)), unlabelled


def training_metrics(reference: Mapping[str, Any]) -> Metrics | None:
    recorded = reference.get("performance")
    if not isinstance(recorded, Mapping):
        return None
    auc = recorded.get("auc")
    return Metrics(
        auc=None if auc is None else float(auc),
        logloss=float(recorded["logloss"]),
        ece=float(recorded["ece"]),
    )
