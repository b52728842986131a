"""GBM training: the domain rules (features, params, class balance, importances), the encoding of a
polars frame into LightGBM's matrix, and LightGbmTrainer on seeded data with a known signal."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

from adapters.compute.cpu_budget import TASK_THREADS_VAR
from adapters.frames import PolarsDataset
from adapters.gbm.encoding import encode_features, label_vector
from adapters.gbm.fitting import lightgbm_params
from adapters.gbm.trainer import LightGbmTrainer
from domain.data import ColumnKind
from domain.errors import InsufficientData, ValidationFailed
from domain.gbm.scorer import load_model
from domain.gbm.training import (
    CategoricalEncoding,
    FeaturePlan,
    GbmParams,
    GbmTrainingOutcome,
    GbmTrainingSpec,
    check_class_balance,
    normalise_importance,
    plan_features,
)
from domain.progress import ProgressReporter, no_progress

pytestmark = pytest.mark.timeout(60)

N = ColumnKind.NUMERIC
C = ColumnKind.CATEGORICAL
B = ColumnKind.BOOLEAN
T = ColumnKind.TEMPORAL


def _fields(error: ValidationFailed) -> list[str]:
    return [d["field"] for d in error.details]


# ------------------------------------------------------------------------- plan_features


def test_default_features_are_all_columns_but_label_and_id() -> None:
    schema = {"id": N, "age": N, "region": C, "member": B, "y": N}
    plan = plan_features(GbmTrainingSpec(label="y"), schema)
    assert plan == FeaturePlan(numeric=("age", "member"), categorical=("region",))
    assert plan.inputs == ("age", "member", "region")


def test_id_field_can_be_changed_or_disabled() -> None:
    schema = {"id": N, "customer": N, "y": N}
    assert plan_features(GbmTrainingSpec(label="y", id_field="customer"), schema).numeric == ("id",)
    assert plan_features(GbmTrainingSpec(label="y", id_field=None), schema).numeric == ("id", "customer")


def test_explicit_features_keep_their_order_without_duplicates() -> None:
    schema = {"a": N, "b": N, "c": C, "y": N}
    spec = GbmTrainingSpec(label="y", features=("b", "a", "b", "c"), categorical_features=("c",))
    assert plan_features(spec, schema) == FeaturePlan(numeric=("b", "a"), categorical=("c",))


def test_unknown_feature_is_named() -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan_features(GbmTrainingSpec(label="y", features=("age", "shoe_size")), {"age": N, "y": N})
    assert _fields(caught.value) == ["features"]
    assert "shoe_size" in caught.value.message


def test_missing_label_is_named() -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan_features(GbmTrainingSpec(label="converted"), {"age": N})
    assert "label" in _fields(caught.value)
    assert "converted" in caught.value.details[0]["message"]


def test_label_as_feature_is_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan_features(GbmTrainingSpec(label="y", features=("age", "y")), {"age": N, "y": N})
    assert _fields(caught.value) == ["features"]
    assert "label" in caught.value.message


def test_text_column_not_listed_as_categorical_is_named() -> None:
    schema = {"age": N, "region": C, "plan": C, "y": N}
    spec = GbmTrainingSpec(label="y", categorical_features=("plan",))
    with pytest.raises(ValidationFailed) as caught:
        plan_features(spec, schema)
    assert _fields(caught.value) == ["region"]
    assert "`categorical_features`" in caught.value.message


def test_categorical_feature_that_is_not_a_feature_is_named() -> None:
    schema = {"age": N, "region": C, "y": N}
    spec = GbmTrainingSpec(label="y", features=("age",), categorical_features=("region",))
    with pytest.raises(ValidationFailed) as caught:
        plan_features(spec, schema)
    assert _fields(caught.value) == ["categorical_features"]


def test_a_numeric_column_can_be_declared_categorical() -> None:
    plan = plan_features(GbmTrainingSpec(label="y", categorical_features=("zip",)), {"zip": N, "y": N})
    assert plan == FeaturePlan(numeric=(), categorical=("zip",))


def test_timestamps_are_refused_by_name() -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan_features(GbmTrainingSpec(label="y"), {"age": N, "signup": T, "y": N})
    assert _fields(caught.value) == ["signup"]
    assert "timestamp" in caught.value.message


def test_every_problem_is_reported_at_once() -> None:
    schema = {"signup": T, "region": C, "y": N}
    spec = GbmTrainingSpec(label="y", features=("ghost", "signup", "region"), categorical_features=())
    with pytest.raises(ValidationFailed) as caught:
        plan_features(spec, schema)
    assert sorted(_fields(caught.value)) == ["features", "region", "signup"]


def test_no_feature_left_is_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        plan_features(GbmTrainingSpec(label="y"), {"id": N, "y": N})
    assert _fields(caught.value) == ["features"]


# ------------------------------------------------------------------------- params, balance, importance


def test_params_default_to_lightgbm_defaults_with_a_fixed_seed() -> None:
    params = GbmTrainingSpec(label="y").params
    assert (params.num_iterations, params.learning_rate, params.num_leaves) == (100, 0.1, 31)
    assert (params.min_data_in_leaf, params.max_depth, params.seed) == (20, -1, 42)


def test_lightgbm_receives_every_param_under_its_own_name() -> None:
    given = lightgbm_params(GbmParams(num_leaves=7, learning_rate=0.05, seed=3))
    assert list(given) == [item.name for item in dataclasses.fields(GbmParams)]
    assert (given["num_leaves"], given["learning_rate"], given["seed"]) == (7, 0.05, 3)
    assert given["max_depth"] == -1 and given["lambda_l1"] == 0.0


def test_out_of_range_spec_values_are_refused_by_spec_path() -> None:
    spec = GbmTrainingSpec(label="y", max_categories=0, params=GbmParams(num_leaves=1, learning_rate=0.0))
    with pytest.raises(ValidationFailed) as caught:
        plan_features(spec, {"x": N, "y": N})
    assert _fields(caught.value) == ["max_categories", "params.learning_rate", "params.num_leaves"]


@pytest.mark.parametrize(
    ("positives", "negatives", "fraction", "field"),
    [
        (5, 4, 0.2, "data"),  # 9 rows
        (0, 50, 0.2, "label"),
        (50, 0, 0.0, "label"),
        (1, 50, 0.2, "label"),  # a stratified split needs 2 of each
    ],
)
def test_class_balance_refusals(positives: int, negatives: int, fraction: float, field: str) -> None:
    with pytest.raises(InsufficientData) as caught:
        check_class_balance(positives, negatives, fraction)
    assert _fields(caught.value) == [field]


def test_class_balance_accepts() -> None:
    check_class_balance(5, 5, 0.2)
    check_class_balance(1, 9, 0.0)  # without a split one positive row is enough


def test_normalise_importance_ranks_and_sums_to_one() -> None:
    ranked = normalise_importance({"b": 1.0, "a": 3.0, "c": 0.0, "d": 1.0})
    assert [f.field for f in ranked] == ["a", "b", "d", "c"]
    assert [f.importance for f in ranked] == [0.6, 0.2, 0.2, 0.0]
    assert [f.selected for f in ranked] == [True, True, True, False]
    assert math.isclose(sum(f.importance for f in ranked), 1.0)
    zero = normalise_importance({"a": 0.0, "b": 0.0})
    assert [(f.importance, f.selected) for f in zero] == [(0.0, False), (0.0, False)]


# ------------------------------------------------------------------------- label_vector


@pytest.mark.parametrize(
    "values",
    [
        [True, False, True],
        [1, 0, 1],
        [1.0, 0.0, 1.0],
        ["1", "0", "1"],
        ["true", "False", " TRUE "],
    ],
)
def test_label_vector_accepts_binary_spellings(values: list[Any]) -> None:
    frame = pl.DataFrame({"y": values})
    assert label_vector(frame, "y").tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    "values",
    [[0, 1, 2], [0.0, 0.5, 1.0], ["yes", "no", "yes"], [0.0, float("nan"), 1.0], [0.0, float("inf"), 1.0]],
)
def test_label_vector_refuses_non_binary_values_naming_the_label(values: list[Any]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        label_vector(pl.DataFrame({"y": values}), "y")
    assert _fields(caught.value) == ["label"]
    assert "'y'" in caught.value.message
    assert "np." not in caught.value.message  # the example value reads as the caller wrote it


def test_label_vector_refuses_nulls() -> None:
    with pytest.raises(ValidationFailed) as caught:
        label_vector(pl.DataFrame({"y": [1, None, 0]}), "y")
    assert _fields(caught.value) == ["label"]
    assert "missing" in caught.value.message


# ------------------------------------------------------------------------- encoding


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "x": [1.0, None, 3.0, 4.0, 5.0, 6.0],
            "flag": [True, False, True, False, None, True],
            "city": ["b", "a", "b", None, "c", "b"],
        }
    )


def test_one_hot_encoding_records_categories_by_frequency() -> None:
    plan = FeaturePlan(numeric=("x", "flag"), categorical=("city",))
    encoded = encode_features(_frame(), plan, CategoricalEncoding.ONEHOT, max_categories=10)
    assert encoded.feature_names == ["x", "flag", "city=b", "city=a", "city=c"]
    assert encoded.column_field == ["x", "flag", "city", "city", "city"]
    assert encoded.input_features[-1] == {
        "name": "city",
        "kind": "categorical",
        "encoding": "onehot",
        "categories": ["b", "a", "c"],
    }
    assert encoded.native_categorical_columns == []
    assert encoded.warnings == []
    m = encoded.matrix
    assert m.dtype == np.float64 and m.shape == (6, 5)
    assert np.isnan(m[1, 0]) and m[0, 0] == 1.0  # missing numbers stay NaN
    assert m[:, 1].tolist()[:4] == [1.0, 0.0, 1.0, 0.0] and np.isnan(m[4, 1])
    assert m[:, 2:].tolist() == [
        [1, 0, 0],
        [0, 1, 0],
        [1, 0, 0],
        [0, 0, 0],
        [0, 0, 1],
        [1, 0, 0],  # a null city is all zeros
    ]


def test_one_hot_keeps_the_top_n_and_warns() -> None:
    plan = FeaturePlan(numeric=(), categorical=("city",))
    encoded = encode_features(_frame(), plan, CategoricalEncoding.ONEHOT, max_categories=2)
    assert encoded.feature_names == ["city=b", "city=a"]
    assert encoded.matrix[4].tolist() == [0.0, 0.0]  # 'c' was dropped: like an unseen category
    assert len(encoded.warnings) == 1 and "'city' has 3 categories" in encoded.warnings[0]


def test_native_encoding_uses_codes_and_nan_for_unseen_or_missing() -> None:
    plan = FeaturePlan(numeric=("x",), categorical=("city",))
    encoded = encode_features(_frame(), plan, CategoricalEncoding.NATIVE, max_categories=2)
    assert encoded.feature_names == ["x", "city"]
    assert encoded.native_categorical_columns == [1]
    assert encoded.input_features[1]["categories"] == ["b", "a"]
    codes = encoded.matrix[:, 1]
    assert codes[[0, 1, 2, 5]].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert np.isnan(codes[3]) and np.isnan(codes[4])  # null, and 'c' beyond the top 2
    assert len(encoded.warnings) == 1


def test_numeric_categories_are_recorded_as_strings() -> None:
    frame = pl.DataFrame({"zip": [10, 20, 10]})
    encoded = encode_features(frame, FeaturePlan((), ("zip",)), CategoricalEncoding.ONEHOT, 10)
    assert encoded.feature_names == ["zip=10", "zip=20"]


# ------------------------------------------------------------------------- LightGbmTrainer


def synthetic(n: int = 1200, seed: int = 7) -> tuple[pl.DataFrame, np.ndarray]:
    """`signal` decides the label (with noise); `noise1`, `noise2` and `colour` are unrelated."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    logit = 3.0 * signal
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    frame = pl.DataFrame(
        {
            "id": np.arange(n),
            "noise1": rng.normal(size=n),
            "signal": signal,
            "noise2": rng.uniform(-1, 1, size=n),
            "colour": rng.choice(["red", "green", "blue"], size=n).tolist(),
            "y": y,
        }
    )
    return frame, y


def train(
    frame: pl.DataFrame, spec: GbmTrainingSpec, progress: ProgressReporter, threads: int = 1
) -> GbmTrainingOutcome:
    """As TrainGbm calls the trainer: with the feature plan it computed for the request."""
    dataset = PolarsDataset(frame)
    return LightGbmTrainer(threads).train(dataset, spec, plan_features(spec, dataset.schema), progress)


@pytest.fixture(scope="module")
def trained() -> tuple[pl.DataFrame, np.ndarray, Any, list[tuple[float, str]]]:
    frame, y = synthetic()
    reports: list[tuple[float, str]] = []
    spec = GbmTrainingSpec(label="y", params=GbmParams(num_iterations=60))
    outcome = train(frame, spec, lambda f, m="": reports.append((f, m)))
    return frame, y, outcome, reports


def _validation_rows(y: np.ndarray, fraction: float = 0.2, seed: int = 42) -> np.ndarray:
    _, valid = train_test_split(np.arange(len(y)), test_size=fraction, stratify=y, random_state=seed)
    return np.sort(valid)


def test_trainer_learns_the_signal(trained: Any) -> None:
    _, y, outcome, _ = trained
    m = outcome.metrics
    assert m.auc is not None and m.auc > 0.8
    assert m.evaluated_on == "validation"
    assert m.validation_samples == 240 and m.training_samples == 960
    assert m.positive_rate == pytest.approx(y.mean())
    assert m.num_trees == m.best_iteration == 60
    assert 0.0 <= m.precision <= 1.0 and 0.0 <= m.recall <= 1.0 and m.accuracy > 0.7


def test_importances_sum_to_one_and_rank_the_signal_first(trained: Any) -> None:
    _, _, outcome, _ = trained
    importance = outcome.feature_importance
    assert {f.field for f in importance} == {"noise1", "signal", "noise2", "colour"}  # not id, not y
    assert math.isclose(sum(f.importance for f in importance), 1.0, abs_tol=1e-12)
    assert importance[0].field == "signal"
    assert importance[0].importance > 0.5


def test_model_state_is_the_contract_and_scores_like_the_metrics(trained: Any) -> None:
    frame, y, outcome, _ = trained
    state = outcome.model_state
    # Numeric inputs in column order, then one column per category, most frequent first.
    assert state["feature_names"] == [
        "noise1",
        "signal",
        "noise2",
        "colour=blue",
        "colour=red",
        "colour=green",
    ]
    assert state["input_features"][-1]["categories"] == ["blue", "red", "green"]
    assert len(state["trees"]) == outcome.metrics.num_trees
    assert all("tree_structure" in tree for tree in state["trees"])
    model = load_model(state)
    valid = _validation_rows(y)
    rows = frame.to_dicts()
    p = np.array([model.score(rows[i]).score for i in valid])
    assert roc_auc_score(y[valid], p) == pytest.approx(outcome.metrics.auc, abs=1e-9)
    assert log_loss(y[valid], p) == pytest.approx(outcome.metrics.logloss, abs=1e-9)
    assert float(((p >= 0.5) == y[valid]).mean()) == pytest.approx(outcome.metrics.accuracy, abs=1e-12)


def test_progress_rises_to_one(trained: Any) -> None:
    *_, reports = trained
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    assert len(fractions) > 10  # one report per boosting round, not just start and end


def test_training_is_deterministic() -> None:
    frame, _ = synthetic(n=300, seed=3)
    spec = GbmTrainingSpec(label="y", params=GbmParams(num_iterations=15))
    first = train(frame, spec, no_progress)
    second = train(frame, spec, no_progress)
    assert first.model_state["content_hash"] == second.model_state["content_hash"]
    assert first.metrics == second.metrics


def test_early_stopping_keeps_fewer_trees_and_the_model_holds_exactly_those() -> None:
    frame, y = synthetic(n=600, seed=11)
    spec = GbmTrainingSpec(
        label="y",
        params=GbmParams(num_iterations=400, learning_rate=0.5, num_leaves=31, min_data_in_leaf=5),
        early_stopping_rounds=5,
    )
    outcome = train(frame, spec, no_progress)
    m = outcome.metrics
    assert m.best_iteration < 400
    assert m.num_trees == m.best_iteration == len(outcome.model_state["trees"])
    assert any("early stopping kept" in w for w in outcome.warnings)
    # The metrics are those of exactly the kept trees.
    model = load_model(outcome.model_state)
    valid = _validation_rows(y)
    rows = frame.to_dicts()
    p = np.array([model.score(rows[i]).score for i in valid])
    assert log_loss(y[valid], p) == pytest.approx(m.logloss, abs=1e-9)


def test_validation_fraction_zero_evaluates_on_training_rows() -> None:
    frame, _ = synthetic(n=200, seed=5)
    spec = GbmTrainingSpec(label="y", params=GbmParams(num_iterations=5), validation_fraction=0.0)
    m = train(frame, spec, no_progress).metrics
    assert (m.evaluated_on, m.training_samples, m.validation_samples) == ("training", 200, 0)


def test_early_stopping_needs_a_validation_split() -> None:
    frame, _ = synthetic(n=100)
    spec = GbmTrainingSpec(label="y", validation_fraction=0.0, early_stopping_rounds=3)
    with pytest.raises(ValidationFailed) as caught:
        train(frame, spec, no_progress)
    assert _fields(caught.value) == ["early_stopping_rounds"]


def test_single_class_is_insufficient_data() -> None:
    frame = pl.DataFrame({"x": list(range(50)), "y": [1] * 50})
    with pytest.raises(InsufficientData) as caught:
        train(frame, GbmTrainingSpec(label="y"), no_progress)
    assert _fields(caught.value) == ["label"]


def test_fewer_than_ten_rows_is_insufficient_data() -> None:
    frame = pl.DataFrame({"x": list(range(9)), "y": [0, 1] * 4 + [1]})
    with pytest.raises(InsufficientData) as caught:
        train(frame, GbmTrainingSpec(label="y"), no_progress)
    assert _fields(caught.value) == ["data"]


def test_native_categorical_training_scores_like_its_metrics() -> None:
    rng = np.random.default_rng(1)
    n = 800
    colour = rng.choice(["red", "green", "blue", "grey"], size=n)
    y = ((colour == "red") | (rng.random(n) < 0.1)).astype(int)
    frame = pl.DataFrame({"colour": colour.tolist(), "x": rng.normal(size=n), "y": y})
    spec = GbmTrainingSpec(
        label="y",
        categorical_encoding=CategoricalEncoding.NATIVE,
        params=GbmParams(num_iterations=20, min_data_per_group=10, cat_smooth=1.0),
    )
    outcome = train(frame, spec, no_progress)
    assert outcome.metrics.auc is not None and outcome.metrics.auc > 0.85
    assert outcome.feature_importance[0].field == "colour"
    model = load_model(outcome.model_state)
    valid = _validation_rows(y)
    rows = frame.to_dicts()
    p = np.array([model.score(rows[i]).score for i in valid])
    assert roc_auc_score(y[valid], p) == pytest.approx(outcome.metrics.auc, abs=1e-9)


def test_the_trainer_runs_with_the_threads_its_worker_chose_capped_by_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame, _ = synthetic(n=200, seed=5)
    spec = GbmTrainingSpec(label="y", params=GbmParams(num_iterations=3))
    monkeypatch.delenv(TASK_THREADS_VAR, raising=False)
    assert train(frame, spec, no_progress, threads=2).threads == 2  # outside a worker: its budget
    monkeypatch.setenv(TASK_THREADS_VAR, "1")
    assert train(frame, spec, no_progress, threads=2).threads == 1  # the worker saw one CPU free
    monkeypatch.setenv(TASK_THREADS_VAR, "4")
    assert train(frame, spec, no_progress, threads=2).threads == 2
