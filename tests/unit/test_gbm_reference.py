"""The drift reference a trained model carries: built from the training rows only, in formats.md's
shape, and binned exactly as `domain.gbm.reference` bins a new row (nulls, NaN, infinities, ties,
booleans, integers that are categories); a model without it and without calibration stays version 1."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import jsonschema_rs
import numpy as np
import polars as pl
import pytest
from sklearn.model_selection import train_test_split

from adapters.frames import PolarsDataset
from adapters.gbm.reference import drift_reference
from adapters.gbm.trainer import LightGbmTrainer
from domain.gbm.reference import expected_shares, field_buckets, numeric_bin, validate_reference
from domain.gbm.scorer import load_model
from domain.gbm.training import GbmParams, GbmTrainingOutcome, GbmTrainingSpec, plan_features
from domain.progress import no_progress

pytestmark = pytest.mark.timeout(60)

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "model_state.schema.json").read_text(encoding="utf-8")
)
PARAMS = GbmParams(num_iterations=15, min_data_in_leaf=5)


def awkward(n: int = 400, seed: int = 8) -> pl.DataFrame:
    """Every kind of value a field can hold, with the label driven by `amount`."""
    rng = np.random.default_rng(seed)
    amount = rng.normal(size=n)
    label = (rng.random(n) < 1 / (1 + np.exp(-2 * amount))).astype(np.int64)
    amount_values: list[float | None] = [float(v) for v in amount]
    for i in range(0, n, 17):
        amount_values[i] = None
    for i in range(3, n, 23):
        amount_values[i] = math.nan
    amount_values[5], amount_values[6] = math.inf, -math.inf
    ties = rng.integers(0, 3, size=n).astype(np.float64)  # three values: repeated deciles
    return pl.DataFrame(
        {
            "amount": pl.Series(amount_values, dtype=pl.Float64, nan_to_null=False),
            "visits": ties,
            "member": rng.random(n) < 0.3,
            "plan": rng.choice([10, 20, 30, 40], size=n),  # integers that are categories
            "region": pl.Series(
                [None if i % 11 == 0 else str(v) for i, v in enumerate(rng.choice(["n", "s", "e"], size=n))]
            ),
            "grade": pl.Series(
                [math.nan if i % 13 == 0 else (2.5 if i % 19 == 0 else float(i % 3)) for i in range(n)]
            ),  # a NaN and a fraction are no category: other
            "y": label,
        }
    )


def train(frame: pl.DataFrame, **spec: Any) -> GbmTrainingOutcome:
    full = GbmTrainingSpec(label="y", categorical_features=("plan", "region", "grade"), params=PARAMS, **spec)
    dataset = PolarsDataset(frame)
    return LightGbmTrainer().train(dataset, full, plan_features(full, dataset.schema), no_progress)


def _split(frame: pl.DataFrame, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    y = frame["y"].to_numpy()
    train_rows, valid_rows = train_test_split(
        np.arange(frame.height), test_size=fraction, stratify=y, random_state=PARAMS.seed
    )
    return np.sort(train_rows), np.sort(valid_rows)


def test_the_reference_has_the_shared_shape_and_validates() -> None:
    frame = awkward()
    outcome = train(frame, validation_fraction=0.25)
    state = outcome.model_state
    reference = state["reference"]
    assert state["schema_version"] == 2 and "calibration" not in state
    validate_reference(reference, state["input_features"])
    assert jsonschema_rs.Draft202012Validator(SCHEMA).is_valid(state)
    train_rows, valid_rows = _split(frame, 0.25)
    assert reference["rows"] == len(train_rows) == outcome.metrics.training_samples
    assert [f["name"] for f in reference["fields"]] == [f["name"] for f in state["input_features"]]
    recorded = {f["name"]: f["categories"] for f in state["input_features"] if f["kind"] == "categorical"}
    for entry in reference["fields"]:
        assert sum(expected_shares(entry)) == pytest.approx(1.0, abs=1e-12)
        if entry["kind"] == "numeric":
            edges = entry["edges"]
            assert len(edges) <= 9 and len(entry["shares"]) == len(edges) + 1
            assert all(math.isfinite(e) for e in edges) and bool(np.all(np.diff(edges) > 0))
        else:
            assert entry["categories"] == recorded[entry["name"]]
    assert {f["name"]: len(f["edges"]) for f in reference["fields"] if f["kind"] == "numeric"}["visits"] <= 3
    score = reference["score"]
    assert (score["rows"], score["source"]) == (len(valid_rows), "validation")
    assert sum(score["shares"]) == pytest.approx(1.0, abs=1e-12)
    assert reference["performance"]["rows"] == len(valid_rows)
    assert reference["performance"]["auc"] == pytest.approx(outcome.metrics.auc, abs=1e-12)
    assert reference["performance"]["logloss"] == pytest.approx(outcome.metrics.logloss, abs=1e-12)


def test_the_fields_are_binned_as_the_domain_bins_the_training_rows() -> None:
    frame = awkward()
    state = train(frame, validation_fraction=0.25).model_state
    train_rows, _ = _split(frame, 0.25)
    training = frame[train_rows]
    rows = len(train_rows)
    for entry in state["reference"]["fields"]:
        values = training[entry["name"]].to_list()
        counts = field_buckets(entry, values)
        assert [c / rows for c in counts] == expected_shares(entry), entry["name"]
        if entry["kind"] == "numeric":
            numbers = training[entry["name"]].cast(pl.Float64).to_numpy()
            present = numbers[~np.isnan(numbers)]
            finite = present[np.isfinite(present)]
            deciles = np.unique(np.quantile(finite, np.linspace(0.1, 0.9, 9), method="linear"))
            assert entry["edges"] == deciles.tolist()
            bins = np.searchsorted(np.array(entry["edges"]), present, side="left")
            assert bins.tolist() == [numeric_bin(entry["edges"], float(v)) for v in present]
    by_name = {entry["name"]: entry for entry in state["reference"]["fields"]}
    amount = by_name["amount"]
    missing = sum(1 for v in training["amount"].to_list() if v is None or math.isnan(v))
    assert amount["missing_share"] == missing / rows > 0
    assert by_name["member"]["edges"] in ([0.0], [0.0, 1.0], [1.0])  # booleans are 1/0
    assert by_name["plan"]["categories"] and set(by_name["plan"]["categories"]) <= {"10", "20", "30", "40"}
    assert by_name["region"]["missing_share"] > 0 and by_name["region"]["other_share"] == 0
    grade = by_name["grade"]
    assert grade["other_share"] > 0 and grade["missing_share"] == 0  # NaN and 2.5 match no category


def test_the_score_is_binned_on_the_validation_rows_as_the_scorer_scores_them() -> None:
    frame = awkward()
    state = train(frame, validation_fraction=0.25).model_state
    _, valid_rows = _split(frame, 0.25)
    model = load_model(state)
    scores = [model.score(row).score for row in frame[valid_rows].drop("y").to_dicts()]
    counts = field_buckets(state["reference"]["score"], scores)
    # The scorer equals LightGBM to about 1e-15; a score on an edge could move by one row.
    np.testing.assert_allclose(
        [c / len(scores) for c in counts], state["reference"]["score"]["shares"], atol=1.5 / len(scores)
    )


def test_without_a_split_the_score_comes_from_the_training_rows() -> None:
    frame = awkward(200)
    reference = train(frame, validation_fraction=0.0).model_state["reference"]
    assert reference["rows"] == reference["score"]["rows"] == 200
    assert reference["score"]["source"] == "training"


def test_a_model_without_reference_or_calibration_is_version_1_and_scores_as_before() -> None:
    frame = awkward()
    with_reference = train(frame, validation_fraction=0.25).model_state
    plain = train(frame, validation_fraction=0.25, include_reference=False).model_state
    assert plain["schema_version"] == 1 and "reference" not in plain and "calibration" not in plain
    assert jsonschema_rs.Draft202012Validator(SCHEMA).is_valid(plain)
    assert plain["trees"] == with_reference["trees"]
    assert {
        k: v for k, v in with_reference.items() if k not in ("reference", "schema_version", "content_hash")
    } == {k: v for k, v in plain.items() if k not in ("schema_version", "content_hash")}
    a, b = load_model(plain), load_model(with_reference)
    for row in frame.drop("y").head(50).to_dicts():
        assert a.score(row) == b.score(row)


def test_a_field_with_no_finite_training_value_has_one_bin() -> None:
    frame = pl.DataFrame(
        {"empty": pl.Series([None, math.nan, None, math.inf], dtype=pl.Float64, nan_to_null=False)}
    )
    features = [{"name": "empty", "kind": "numeric"}]
    reference = drift_reference(frame, features, np.arange(4), np.array([0.2, 0.4, 0.6, 0.8]), "training")
    entry = reference["fields"][0]
    assert entry == {"name": "empty", "kind": "numeric", "edges": [], "shares": [0.25], "missing_share": 0.75}
    assert field_buckets(entry, [None, math.nan, None, math.inf]) == [1, 3]
    assert "performance" not in reference


def test_score_edges_sit_between_distinct_scores_so_an_ulp_cannot_move_a_row() -> None:
    # Three stumps give at most 8 distinct scores over 300 rows: deciles land on tied scores.
    rng = np.random.default_rng(3)
    frame = pl.DataFrame(
        {"a": rng.integers(0, 2, 400), "b": rng.integers(0, 2, 400), "y": rng.integers(0, 2, 400)}
    )
    spec = GbmTrainingSpec(label="y", params=GbmParams(num_iterations=3, num_leaves=2, min_data_in_leaf=5))
    dataset = PolarsDataset(frame)
    state = (
        LightGbmTrainer().train(dataset, spec, plan_features(spec, dataset.schema), no_progress).model_state
    )
    _, valid_rows = _split(frame, 0.2)
    model = load_model(state)
    scores = np.array([model.score(row).score for row in frame[valid_rows].drop("y").to_dicts()])
    edges = np.array(state["reference"]["score"]["edges"])
    assert len(np.unique(scores)) < 10 and len(edges) > 0
    assert not np.isin(edges, scores).any()
    for nudged in (np.nextafter(scores, 0), np.nextafter(scores, 1)):  # what another exp might give
        assert (np.searchsorted(edges, nudged) == np.searchsorted(edges, scores)).all()
    counts = field_buckets(state["reference"]["score"], scores.tolist())
    assert [c / len(scores) for c in counts] == expected_shares(state["reference"]["score"])


def test_a_large_training_set_is_summarised_from_a_seeded_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.gbm.reference as module

    monkeypatch.setattr(module, "REFERENCE_SAMPLE_ROWS", 2_000)
    rng = np.random.default_rng(5)
    frame = pl.DataFrame({"x": rng.normal(size=20_000)})
    inputs = [{"name": "x", "kind": "numeric"}]
    rows, scores = np.arange(20_000), rng.random(20_000)
    reference = drift_reference(frame, inputs, rows, scores, "training")
    again = drift_reference(frame, inputs, rows, scores, "training")
    assert reference == again  # seeded: the same data gives the same reference
    assert reference["rows"] == reference["score"]["rows"] == 2_000
    full = np.quantile(frame["x"].to_numpy(), np.linspace(0.1, 0.9, 9))
    assert np.allclose(reference["fields"][0]["edges"], full, atol=0.1)
    assert sum(reference["fields"][0]["shares"]) == pytest.approx(1.0, abs=1e-12)
