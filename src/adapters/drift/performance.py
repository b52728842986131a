"""The model's score on labelled new rows: AUC, logloss and the expected calibration error as
training reports them (adapters/gbm/metrics.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from adapters.gbm.encoding import label_vector
from adapters.gbm.metrics import expected_calibration_error, log_loss, roc_auc
from domain.drift.result import Metrics, Performance


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
