"""`cv_folds`: stratified K-fold over every labelled row, each fold model (the returned model's
parameters, seed and trees) scored on the fold it did not train on; the returned model unchanged."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from adapters.frames import PolarsDataset
from adapters.gbm.fitting import lightgbm_params
from adapters.gbm.trainer import LightGbmTrainer
from domain.data import ColumnKind
from domain.errors import InsufficientData, ValidationFailed
from domain.gbm.training import (
    Calibration,
    GbmParams,
    GbmTrainingOutcome,
    GbmTrainingSpec,
    plan_features,
    smallest_training_rows,
    training_rows,
)
from domain.progress import ProgressReporter, no_progress

pytestmark = pytest.mark.timeout(60)

PARAMS = GbmParams(num_iterations=30, min_data_in_leaf=5)


def generated(n: int = 500, seed: int = 12) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * a))).astype(np.int64)
    return pl.DataFrame({"a": a, "b": b, "y": y})


def train(frame: pl.DataFrame, progress: ProgressReporter = no_progress, **spec: Any) -> GbmTrainingOutcome:
    full = GbmTrainingSpec(label="y", params=PARAMS, **spec)
    dataset = PolarsDataset(frame)
    return LightGbmTrainer().train(dataset, full, plan_features(full, dataset.schema), progress)


def _by_hand(frame: pl.DataFrame, folds: int) -> tuple[list[float], list[float], np.ndarray]:
    """The folds as the contract describes them, with LightGBM directly: each fold's AUC and logloss,
    and every row's out-of-fold probability."""
    x, y = frame.select("a", "b").to_numpy(), frame["y"].to_numpy()
    params = lightgbm_params(PARAMS)
    rounds = params.pop("num_iterations")
    params.update(objective="binary", verbosity=-1, num_threads=1, deterministic=True, force_col_wise=True)
    aucs, losses = [], []
    out_of_fold = np.empty(len(y))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=PARAMS.seed)
    for fit, held in splitter.split(x, y):
        booster = lgb.train(params, lgb.Dataset(x[fit], label=y[fit], params=params), num_boost_round=rounds)
        p = booster.predict(x[held])
        out_of_fold[held] = p
        aucs.append(roc_auc_score(y[held], p))
        losses.append(log_loss(y[held], p))
    return aucs, losses, out_of_fold


def test_three_folds_report_the_mean_and_population_std_of_each_folds_metrics() -> None:
    frame = generated()
    reports: list[float] = []
    outcome = train(frame, lambda fraction, _message="": reports.append(fraction), cv_folds=3)
    cv = outcome.metrics.cross_validation
    assert cv is not None and cv.folds == 3
    aucs, losses, _ = _by_hand(frame, 3)
    assert cv.auc_mean == pytest.approx(np.mean(aucs), abs=1e-9)
    assert cv.auc_std == pytest.approx(np.std(aucs), abs=1e-9)
    assert cv.logloss_mean == pytest.approx(np.mean(losses), abs=1e-9)
    assert cv.logloss_std == pytest.approx(np.std(losses), abs=1e-9)
    assert 0.7 < cv.auc_mean < 1 and cv.auc_std < 0.1
    assert outcome.durations_ms.cross_validate is not None and outcome.durations_ms.calibrate is None
    assert outcome.metrics.calibration is None and "calibration" not in outcome.model_state
    # Four trainings share the bar, which still only rises, to 1.
    assert reports == sorted(reports) and reports[-1] == 1.0
    assert len(reports) > 4 * PARAMS.num_iterations


def test_the_returned_model_is_the_one_trained_without_folds() -> None:
    frame = generated(300)
    with_folds, without = train(frame, cv_folds=4), train(frame)
    assert with_folds.model_state == without.model_state
    assert without.metrics.cross_validation is None
    cross_validation = with_folds.metrics.cross_validation
    assert with_folds.metrics == dataclasses.replace(without.metrics, cross_validation=cross_validation)


@pytest.mark.parametrize("folds", [1, 2])
def test_one_or_two_folds_are_refused_naming_cv_folds(folds: int) -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan_features(
            GbmTrainingSpec(label="y", cv_folds=folds), {"a": ColumnKind.NUMERIC, "y": ColumnKind.NUMERIC}
        )
    assert "cv_folds" in [d["field"] for d in caught.value.details]


def test_more_folds_than_rows_of_the_rarer_class_are_refused_before_training() -> None:
    frame = generated(60).with_columns(y=pl.Series([1] * 4 + [0] * 56))
    with pytest.raises(InsufficientData) as caught:
        train(frame, cv_folds=5, validation_fraction=0.0)
    assert [d["field"] for d in caught.value.details] == ["cv_folds"]


def test_without_a_split_the_calibrator_reuses_the_cv_folds() -> None:
    frame = generated(400)
    outcome = train(frame, cv_folds=4, calibration=Calibration.ISOTONIC, validation_fraction=0.0)
    cv, calibration = outcome.metrics.cross_validation, outcome.metrics.calibration
    assert cv is not None and cv.folds == 4
    assert calibration is not None and calibration.fitted_on == 400
    assert outcome.model_state["calibration"]["source"] == "cross_fitted"
    # The same fold models served both: the calibrator was fitted and measured on the CV folds'
    # out-of-fold scores of every row.
    _, _, out_of_fold = _by_hand(frame, 4)
    y = frame["y"].to_numpy()
    assert calibration.brier_before == pytest.approx(float(np.mean((out_of_fold - y) ** 2)), abs=1e-9)
    durations = outcome.durations_ms
    assert durations.cross_validate is not None and durations.calibrate is not None


@pytest.mark.parametrize("rows", [30, 47, 101, 250])
@pytest.mark.parametrize("folds", [3, 7, 10])
def test_the_bagging_check_counts_the_fold_models_rows(rows: int, folds: int) -> None:
    """`check_bagging` reads the fewest rows any model trains on: never more than a fold model has."""
    rng = np.random.default_rng(rows + folds)
    y = np.r_[np.ones(folds), np.zeros(folds), (rng.random(rows - 2 * folds) < 0.3)].astype(int)
    spec = GbmTrainingSpec(label="y", cv_folds=folds)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=PARAMS.seed)
    fewest_fit = min(len(fit) for fit, _ in splitter.split(np.zeros(rows), y))
    assert smallest_training_rows(rows, spec) <= fewest_fit
    assert smallest_training_rows(rows, spec) <= training_rows(rows, spec.validation_fraction)
    calibrated = GbmTrainingSpec(label="y", calibration=Calibration.PLATT, validation_fraction=0.0)
    assert smallest_training_rows(rows, calibrated) == rows - math.ceil(rows / 3) - 1
    assert smallest_training_rows(rows, GbmTrainingSpec(label="y", validation_fraction=0.0)) == rows
