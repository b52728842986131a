"""The curves of a training: scikit-learn's ROC points (thinned to 101), the reliability bins of the ECE,
and the calibrated curve when the model is calibrated."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from adapters.frames import PolarsDataset
from adapters.gbm.curves import MAX_ROC_POINTS, reliability, roc_points
from adapters.gbm.trainer import LightGbmTrainer
from domain.gbm.training import Calibration, GbmParams, GbmTrainingSpec, plan_features
from domain.progress import no_progress


def test_roc_points_are_scikit_learns_with_ties_when_there_are_few() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60).astype(float)
    p = np.round(rng.random(60), 1)  # many ties
    fpr, tpr = roc_points(y, p)
    expected_fpr, expected_tpr, _ = roc_curve(y, p, drop_intermediate=False)
    assert np.allclose(fpr, expected_fpr, atol=1e-15) and np.allclose(tpr, expected_tpr, atol=1e-15)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_many_roc_points_are_thinned_to_101_keeping_both_ends_and_the_order() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 5000).astype(float)
    p = rng.random(5000)
    fpr, tpr = roc_points(y, p)
    assert len(fpr) == len(tpr) == MAX_ROC_POINTS
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert roc_points(np.ones(4), p[:4]) == ((0.0, 1.0), (0.0, 1.0))  # one class: the diagonal


def test_reliability_uses_the_equal_width_bins_and_leaves_empty_ones_out() -> None:
    y = np.array([0, 1, 1, 0, 1.0])
    p = np.array([0.05, 0.08, 0.55, 0.59, 1.0])
    curve = reliability(y, p)
    assert curve.count == (2, 2, 1)
    assert np.allclose(curve.predicted, (0.065, 0.57, 1.0), atol=1e-15)
    assert curve.observed == (0.5, 0.5, 1.0)


def test_a_calibrated_training_carries_both_reliability_curves_on_the_evaluated_rows() -> None:
    rng = np.random.default_rng(4)
    n = 600
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * x))).astype(int)
    dataset = PolarsDataset(pl.DataFrame({"x": x, "noise": rng.normal(size=n), "y": y}))
    spec = GbmTrainingSpec(label="y", calibration=Calibration.ISOTONIC, params=GbmParams(num_iterations=30))
    outcome = LightGbmTrainer().train(dataset, spec, plan_features(spec, dataset.schema), no_progress)
    curves = outcome.curves
    assert sum(curves.calibration.count) == outcome.metrics.validation_samples == 120
    assert curves.calibrated is not None and sum(curves.calibrated.count) == 120
    assert curves.calibrated != curves.calibration
    assert len(curves.roc_fpr) <= MAX_ROC_POINTS and curves.roc_tpr[-1] == 1.0
