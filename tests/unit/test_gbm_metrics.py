"""The training metrics without work done twice: the scores LightGBM holds for the rows it trained and
validated on are its predictions, and the numpy metrics are scikit-learn's, ties included."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, log_loss, precision_score, recall_score, roc_auc_score

from adapters.frames import PolarsDataset
from adapters.gbm.fitting import held_scores
from adapters.gbm.metrics import binary_metrics, roc_auc
from adapters.gbm.trainer import LightGbmTrainer
from domain.gbm.scorer import load_model
from domain.gbm.training import CategoricalEncoding, GbmParams, GbmTrainingSpec, plan_features
from domain.progress import no_progress

COUNTS: dict[str, Any] = dict(
    training_samples=1,
    validation_samples=0,
    positive_rate=0.5,
    best_iteration=1,
    num_trees=1,
    evaluated_on="training",
)


def _sklearn(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    predicted = (p >= 0.5).astype(np.float64)
    return {
        "auc": roc_auc_score(y, p) if len(np.unique(y)) == 2 else None,
        "logloss": log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0.0, 1.0]),
        "accuracy": accuracy_score(y, predicted),
        "precision": precision_score(y, predicted, zero_division=0),
        "recall": recall_score(y, predicted, zero_division=0),
    }


def _ours(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    m = binary_metrics(y, p, **COUNTS)
    return {
        "auc": m.auc,
        "logloss": m.logloss,
        "accuracy": m.accuracy,
        "precision": m.precision,
        "recall": m.recall,
    }


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(5)
    n = 5000
    p = rng.random(n)
    y = (rng.random(n) < p).astype(np.float64)
    coarse = np.round(p, 1)  # 11 distinct scores: long runs of ties across both classes
    return [
        ("continuous", y, p),
        ("ties", y, coarse),
        ("a tie at the 0.5 threshold", y, np.where(coarse == 0.5, 0.5, coarse)),
        ("all tied", y, np.full(n, 0.3)),
        ("certain and wrong", np.array([0.0, 1.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0, 0.0])),
        ("nothing predicted positive", y, p * 0.4),
        ("one class", np.ones(50), rng.random(50)),
        ("large", (rng.random(200_000) < 0.3).astype(np.float64), np.round(rng.random(200_000), 3)),
    ]


@pytest.mark.parametrize(("name", "y", "p"), _cases(), ids=[c[0] for c in _cases()])
def test_the_numpy_metrics_equal_scikit_learns(name: str, y: np.ndarray, p: np.ndarray) -> None:
    ours, theirs = _ours(y, p), _sklearn(y, p)
    assert (ours["auc"] is None) == (theirs["auc"] is None) == (name == "one class")
    for key, value in theirs.items():
        if value is not None:
            assert ours[key] == pytest.approx(value, abs=1e-12, rel=0), key


def test_auc_counts_a_tied_pair_as_half() -> None:
    # Pairs (positive, negative): (0.5, 0.2) right, (0.5, 0.5) tied, (0.1, 0.2) wrong, (0.1, 0.5) wrong.
    assert roc_auc(np.array([1.0, 1.0, 0.0, 0.0]), np.array([0.5, 0.1, 0.2, 0.5])) == 0.375


def _booster_data(n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 4))
    x[rng.random(n) < 0.1, 1] = np.nan
    x[:, 2] = np.round(x[:, 2], 1)  # repeated values at split thresholds
    x[:, 3] = rng.integers(0, 9, n)
    x[rng.random(n) < 0.05, 3] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] + (x[:, 3] % 3) - 1)))).astype(np.float64)
    return x, y


@pytest.mark.parametrize(
    "extra",
    [{}, {"bagging_fraction": 0.5, "bagging_freq": 1, "feature_fraction": 0.5}],
    ids=["plain", "bagging"],
)
def test_the_held_scores_are_lightgbms_predictions_with_categorical_features(extra: dict[str, Any]) -> None:
    x, y = _booster_data()
    train, valid = np.arange(0, 2400), np.arange(2400, 3000)
    params = dict(
        objective="binary", metric="binary_logloss", verbosity=-1, num_threads=1, deterministic=True, **extra
    )
    train_set = lgb.Dataset(x[train], label=y[train], categorical_feature=[3], params=params)
    valid_set = train_set.create_valid(x[valid], label=y[valid])
    booster = lgb.train(params, train_set, 30, valid_sets=[valid_set], keep_training_booster=True)
    used = booster.current_iteration()
    on_train = held_scores(booster, x, train, used, on_validation=False)
    on_valid = held_scores(booster, x, valid, used, on_validation=True)
    np.testing.assert_allclose(on_train, booster.predict(x[train]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(on_valid, booster.predict(x[valid]), rtol=0, atol=1e-12)
    # Fewer trees kept (early stopping): those trees' predictions.
    fewer = held_scores(booster, x, valid, 12, on_validation=True)
    np.testing.assert_allclose(fewer, booster.predict(x[valid], num_iteration=12), rtol=0, atol=1e-12)


def test_training_metrics_without_a_validation_split_are_those_of_the_model_on_every_row() -> None:
    rng = np.random.default_rng(4)
    n = 900
    colour = rng.choice(["red", "green", "blue", "grey"], size=n)
    x = rng.normal(size=n)
    y = ((colour == "red") ^ (rng.random(n) < 0.2) | (x > 1.2)).astype(int)
    frame = pl.DataFrame({"colour": colour.tolist(), "x": x, "y": y})
    spec = GbmTrainingSpec(
        label="y",
        categorical_encoding=CategoricalEncoding.NATIVE,
        validation_fraction=0.0,
        params=GbmParams(num_iterations=25, min_data_per_group=10, cat_smooth=1.0),
    )
    dataset = PolarsDataset(frame)
    outcome = LightGbmTrainer(1).train(dataset, spec, plan_features(spec, dataset.schema), no_progress)
    model = load_model(outcome.model_state)
    p = np.array([model.score(row).score for row in frame.to_dicts()])
    expected = _sklearn(y.astype(np.float64), p)
    m = outcome.metrics
    assert m.evaluated_on == "training" and m.training_samples == n
    assert m.auc == pytest.approx(expected["auc"], abs=1e-9)
    assert m.logloss == pytest.approx(expected["logloss"], abs=1e-9)
    assert (m.accuracy, m.precision, m.recall) == pytest.approx(
        (expected["accuracy"], expected["precision"], expected["recall"]), abs=1e-12
    )
