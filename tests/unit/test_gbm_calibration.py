"""Calibration in POST /train/gbm: the fits equal scikit-learn's, the calibrator never sees a row
the trees trained on, and on fresh rows from the same generator (that neither the trees nor the
calibrator saw, scored by the Python scorer) it removes a known miscalibration."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from adapters.frames import PolarsDataset
from adapters.gbm.calibration import (
    HeldOut,
    calibrate,
    calibrated_scores,
    fit_isotonic,
    fit_platt,
)
from adapters.gbm.metrics import expected_calibration_error, roc_auc
from adapters.gbm.trainer import LightGbmTrainer
from domain.errors import InsufficientData
from domain.gbm import calibration as domain_calibration
from domain.gbm.model_state import content_hash
from domain.gbm.scorer import load_model
from domain.gbm.training import Calibration, GbmParams, GbmTrainingOutcome, GbmTrainingSpec, plan_features
from domain.progress import no_progress

pytestmark = pytest.mark.timeout(60)

DEEP = GbmParams(num_leaves=255, min_data_in_leaf=1, num_iterations=100)


def generated(n: int, seed: int, strength: float = 2.0) -> pl.DataFrame:
    """Labels drawn from a logistic model of two features: the true probability is smooth, so a
    model that pushes scores to 0 and 1 is miscalibrated by construction."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-strength * (a + 0.5 * b)))).astype(np.int64)
    return pl.DataFrame({"a": a, "b": b, "y": y})


def train(frame: pl.DataFrame, **spec: Any) -> GbmTrainingOutcome:
    full = GbmTrainingSpec(label="y", **spec)
    dataset = PolarsDataset(frame)
    return LightGbmTrainer().train(dataset, full, plan_features(full, dataset.schema), no_progress)


def scored(outcome: GbmTrainingOutcome, frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, uncalibrated probability, the scorer's calibrated score) of the frame's rows."""
    model = load_model(outcome.model_state)
    scores = [model.score(row) for row in frame.drop("y").to_dicts()]
    raw = np.array([s.raw_margin for s in scores])
    return (
        frame["y"].to_numpy().astype(np.float64),
        1 / (1 + np.exp(-raw)),
        np.array([s.score for s in scores]),
    )


# ------------------------------------------------------------------------- the fits


def test_isotonic_breakpoints_and_scores_are_scikit_learns() -> None:
    rng = np.random.default_rng(4)
    p = rng.beta(0.5, 0.5, size=400)
    y = (rng.random(400) < 0.2 + 0.6 * p).astype(np.float64)
    p[::7] = p[3]  # ties
    x_fit, y_fit = fit_isotonic(p, y)
    reference = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1, increasing=True).fit(p, y)
    np.testing.assert_allclose(x_fit, reference.X_thresholds_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y_fit, reference.y_thresholds_, rtol=0, atol=1e-12)
    assert np.all(np.diff(x_fit) > 0) and np.all(np.diff(y_fit) >= 0)
    block = {
        "method": "isotonic",
        "fitted_on": 400,
        "source": "validation",
        "x": x_fit.tolist(),
        "y": y_fit.tolist(),
    }
    fresh = np.concatenate([rng.random(500), [0.0, 1.0, x_fit[0], x_fit[-1], x_fit[5]], x_fit])
    batch = calibrated_scores(block, fresh, None)
    np.testing.assert_allclose(batch, reference.predict(fresh), rtol=0, atol=1e-12)
    # The scorers' one-row path is the same expression: equal to the last bit.
    assert [domain_calibration.calibrate(block, v, 0.0) for v in fresh] == batch.tolist()


def test_platt_is_the_unpenalised_logistic_fit_on_the_margin() -> None:
    rng = np.random.default_rng(5)
    margin = rng.normal(scale=3.0, size=600)
    y = (rng.random(600) < 1 / (1 + np.exp(-(0.4 * margin - 0.7)))).astype(np.float64)
    a, b, converged = fit_platt(margin, y)
    # penalty=None, as scikit-learn 1.8 spells it without a deprecation warning.
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10000).fit(margin.reshape(-1, 1), y)
    assert converged
    assert a == pytest.approx(reference.coef_[0][0], abs=1e-6)
    assert b == pytest.approx(reference.intercept_[0], abs=1e-6)
    block = {"method": "platt", "fitted_on": 600, "source": "validation", "a": a, "b": b}
    batch = calibrated_scores(block, np.zeros(600), margin)
    # The same expression; numpy's exp and the C library's may differ in the last bit.
    one_by_one = [domain_calibration.calibrate(block, 0.0, m) for m in margin]
    np.testing.assert_allclose(one_by_one, batch, rtol=1e-15, atol=0)


def test_platt_is_not_applied_when_the_held_out_rows_rank_backwards() -> None:
    rng = np.random.default_rng(6)
    margin = rng.normal(size=200)
    y = (rng.random(200) < 1 / (1 + np.exp(2 * margin))).astype(np.float64)
    fitted = calibrate(Calibration.PLATT, HeldOut(y, 1 / (1 + np.exp(-margin)), margin, "validation"), seed=1)
    assert fitted.block is None and fitted.metrics is None
    assert fitted.warning is not None and "`calibration` platt was not applied" in fitted.warning


@pytest.mark.parametrize(
    ("labels", "why"),
    [(np.array([0.0, 1.0] * 9), "18 rows"), (np.array([1.0] + [0.0] * 40), "one positive")],
)
def test_too_few_held_out_rows_are_refused_naming_calibration(labels: np.ndarray, why: str) -> None:
    with pytest.raises(InsufficientData) as caught:
        calibrate(
            Calibration.ISOTONIC, HeldOut(labels, np.full(len(labels), 0.5), None, "validation"), seed=1
        )
    assert [d["field"] for d in caught.value.details] == ["calibration"], why


def test_a_validation_split_too_small_to_calibrate_is_refused_before_training() -> None:
    with pytest.raises(InsufficientData) as caught:
        train(generated(60, 1), calibration=Calibration.ISOTONIC, validation_fraction=0.2)
    assert [d["field"] for d in caught.value.details] == ["calibration"]
    assert "`validation_fraction`" in caught.value.message


# ------------------------------------------------------------------------- held-out rows only


def test_the_calibrator_is_fitted_on_the_validation_rows_and_only_them() -> None:
    frame = generated(600, 3)
    outcome = train(frame, calibration=Calibration.ISOTONIC, validation_fraction=0.25, params=DEEP)
    block = outcome.model_state["calibration"]
    valid = math.ceil(600 * 0.25)
    assert (block["fitted_on"], block["source"]) == (valid, "validation")
    assert outcome.metrics.calibration is not None
    assert outcome.metrics.calibration.fitted_on == outcome.metrics.validation_samples == valid
    # Refitting scikit-learn on the validation rows' scores (the scorer's, uncalibrated) gives the
    # stored breakpoints: the calibrator read those rows, not the training rows.
    y = frame["y"].to_numpy()
    _, rows = train_test_split(np.arange(600), test_size=0.25, stratify=y, random_state=DEEP.seed)
    labels, p, _ = scored(outcome, frame[np.sort(rows)])
    reference = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(p, labels)
    np.testing.assert_allclose(block["x"], reference.X_thresholds_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(block["y"], reference.y_thresholds_, rtol=0, atol=1e-12)
    assert outcome.model_state["schema_version"] == 2


def test_without_a_split_the_calibrator_is_cross_fitted_on_every_row() -> None:
    frame = generated(400, 4)
    outcome = train(frame, calibration=Calibration.PLATT, validation_fraction=0.0, params=DEEP)
    block = outcome.model_state["calibration"]
    assert (block["method"], block["source"], block["fitted_on"]) == ("platt", "cross_fitted", 400)
    m = outcome.metrics
    assert m.calibration is not None and (m.calibration.fitted_on, m.calibration.measured_on) == (400, 400)
    # In-sample, the deep trees look perfect; the out-of-fold scores they were calibrated on did not,
    # so the stored slope shrinks the margin hard.
    assert m.auc is not None and m.auc > 0.99
    assert 0 < block["a"] < 0.5
    assert outcome.durations_ms.calibrate is not None and outcome.durations_ms.cross_validate is None


# ------------------------------------------------------------------------- on fresh rows


def test_isotonic_halves_the_calibration_error_of_deep_trees_on_fresh_rows() -> None:
    outcome = train(
        generated(1500, 1), calibration=Calibration.ISOTONIC, validation_fraction=0.4, params=DEEP
    )
    labels, before, after = scored(outcome, generated(1500, 101))
    ece_before, ece_after = (
        expected_calibration_error(labels, before),
        expected_calibration_error(labels, after),
    )
    assert ece_before > 0.2  # the deep trees are badly miscalibrated
    assert ece_after <= ece_before / 2
    auc_before, auc_after = roc_auc(labels, before), roc_auc(labels, after)
    assert auc_before is not None and auc_after is not None
    assert abs(auc_after - auc_before) <= 0.005  # its flat steps tie rows the trees told apart
    # The measured metrics agree in direction (out-of-fold over the validation rows).
    m = outcome.metrics.calibration
    assert m is not None and m.ece_after <= m.ece_before / 2 and m.brier_after < m.brier_before


def test_platt_halves_the_error_of_a_sigmoid_shaped_distortion_and_keeps_the_ranking() -> None:
    # Weighting positives 6 times shifts every margin by about log 6: a distortion of sigmoid shape.
    params = GbmParams(num_iterations=50, scale_pos_weight=6.0)
    outcome = train(generated(1500, 2), calibration=Calibration.PLATT, validation_fraction=0.4, params=params)
    labels, before, after = scored(outcome, generated(1500, 102))
    ece_before, ece_after = (
        expected_calibration_error(labels, before),
        expected_calibration_error(labels, after),
    )
    assert ece_before > 0.1
    assert ece_after <= ece_before / 2
    auc_before, auc_after = roc_auc(labels, before), roc_auc(labels, after)
    assert auc_before is not None and auc_after == pytest.approx(auc_before, abs=1e-12)
    assert outcome.model_state["calibration"]["b"] < -0.5  # pulls the inflated scores down


def test_the_score_is_calibrated_but_the_raw_margin_is_not() -> None:
    frame = generated(300, 7)
    outcome = train(
        frame, calibration=Calibration.PLATT, validation_fraction=0.3, params=GbmParams(num_iterations=20)
    )
    plain = {key: value for key, value in outcome.model_state.items() if key != "calibration"}
    plain["schema_version"] = 1
    plain.pop("reference")
    plain["content_hash"] = content_hash(plain)
    calibrated, uncalibrated = load_model(outcome.model_state), load_model(plain)
    block = outcome.model_state["calibration"]
    for row in frame.drop("y").head(20).to_dicts():
        with_block, without = calibrated.score(row), uncalibrated.score(row)
        assert with_block.raw_margin == without.raw_margin
        assert with_block.score == pytest.approx(
            1 / (1 + math.exp(-(block["a"] * without.raw_margin + block["b"])))
        )


def test_a_platt_fit_on_backward_ranked_validation_rows_leaves_a_version_1_model() -> None:
    # The split depends only on the labels and the seed: the feature is drawn after it, with the
    # opposite relation on the validation rows, so the trees rank those rows backwards.
    rng = np.random.default_rng(9)
    y = (np.arange(300) % 2).astype(np.int64)
    _, valid = train_test_split(np.arange(300), test_size=0.3, stratify=y, random_state=DEEP.seed)
    direction = np.ones(300)
    direction[valid] = -1.0
    x = direction * (2.0 * y - 1.0) + rng.normal(scale=0.5, size=300)
    frame = pl.DataFrame({"x": x, "y": y})
    params = GbmParams(num_iterations=20)
    outcome = train(
        frame, calibration=Calibration.PLATT, validation_fraction=0.3, include_reference=False, params=params
    )
    state = outcome.model_state
    assert state["schema_version"] == 1 and "calibration" not in state
    assert outcome.metrics.calibration is None and outcome.durations_ms.calibrate is not None
    assert any("`calibration` platt was not applied" in warning for warning in outcome.warnings)
    assert outcome.metrics.auc is not None and outcome.metrics.auc < 0.2
