"""Parity of the pure-Python reference scorer with LightGBM itself (DESIGN 2.5, issues 2 and 7).

The raw margin must equal `Booster.predict(raw_score=True)` to 1e-12; it is in fact bit-exact (same
leaves summed in the same order), which these tests assert, so a routing slip on a single row fails.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import jsonschema_rs
import lightgbm as lgb
import numpy as np
import pytest
from gbm_cases import (
    CRAFTED_CATEGORY_SETS,
    CRAFTED_THRESHOLDS,
    FIXED_RECIPES,
    REPO,
    Case,
    Recipe,
    build_case,
    crafted_boosters,
    crafted_probes,
    crafted_state,
    encode_rows,
    layout,
    recipes,
)
from hypothesis import HealthCheck, given, settings

from adapters.gbm.model_dump import model_state_from_dump
from domain.gbm.scorer import load_model

TOLERANCE = 1e-12
RECIPES = {recipe.name: recipe for recipe in FIXED_RECIPES}


@functools.cache
def fixed_case(name: str) -> Case:
    return build_case(RECIPES[name])


def split_nodes(state: dict[str, Any]) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for tree in state["trees"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" in node:
                nodes.append(node)
                stack.extend((node["left_child"], node["right_child"]))
    return nodes


def split_kinds(state: dict[str, Any]) -> set[tuple[str, str]]:
    return {(node["decision_type"], node["missing_type"]) for node in split_nodes(state)}


def assert_parity(case: Case) -> None:
    model = load_model(case.state)
    raw = np.array([model.raw_margin(row) for row in case.rows])
    mismatched = [(case.rows[i], raw[i], case.raw[i]) for i in np.nonzero(raw != case.raw)[0][:3]]
    assert not mismatched, f"raw margins differ from LightGBM: {mismatched}"
    scores = model.score_batch(case.rows)
    assert max(abs(s.raw_margin - r) for s, r in zip(scores, case.raw, strict=True)) <= TOLERANCE
    assert max(abs(s.score - p) for s, p in zip(scores, case.prob, strict=True)) <= TOLERANCE
    for s in scores:
        assert math.isclose(s.base_value + sum(s.contributions.values()), s.raw_margin, abs_tol=1e-9)
    arrays_raw = np.array([model.raw_margin(row) for row in case.arrays])
    assert np.array_equal(arrays_raw, case.arrays_raw), "encoded rows route differently from LightGBM"
    arrays_prob = np.array([model.score(row).score for row in case.arrays])
    assert np.max(np.abs(arrays_prob - case.arrays_prob)) <= TOLERANCE


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_fixed_case_matches_lightgbm(name: str) -> None:
    assert_parity(fixed_case(name))


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_encode_matches_the_trainers_encoding(name: str) -> None:
    case = fixed_case(name)
    model = load_model(case.state)
    expected = encode_rows(case.recipe, case.rows)
    actual = np.array([model.encode(row) for row in case.rows])
    assert np.array_equal(actual, expected, equal_nan=True)


def test_cases_exercise_the_routing_rules_they_claim() -> None:
    # A parity test passes vacuously if the model never takes the path under test.
    assert ("<=", "NaN") in split_kinds(fixed_case("numeric_nan").state)
    assert ("<=", "None") in split_kinds(fixed_case("numeric_nan").state)
    assert ("<=", "Zero") in split_kinds(fixed_case("zero_as_missing").state)
    assert split_kinds(fixed_case("no_missing_use").state) == {("<=", "None")}
    native = fixed_case("native_categorical").state
    assert ("==", "None") in split_kinds(native)
    categorical = [node for node in split_nodes(native) if node["decision_type"] == "=="]
    assert any("||" in node["threshold"] for node in categorical), "no multi-category split"
    stopped = fixed_case("onehot_sigmoid_early_stopping")
    assert stopped.num_iteration is not None and len(stopped.state["trees"]) == stopped.num_iteration < 60
    assert stopped.state["sigmoid"] == 2.5
    assert len(fixed_case("num_iteration").state["trees"]) == 4


def test_nan_on_a_none_split_reads_as_zero_not_as_missing() -> None:
    # The bug of m2cgen/onnxmltools/tidypredict: NaN on missing_type None must route like 0.0.
    case = fixed_case("no_missing_use")
    model = load_model(case.state)
    base = case.rows[0]
    for name in ("x", "y"):
        nan_row = {**base, name: None}
        zero_row = {**base, name: 0.0}
        assert model.raw_margin(nan_row) == model.raw_margin(zero_row)
    assert any(row.get("x") is None for row in case.rows)


def test_thresholds_clamped_by_the_dump_are_restored_from_the_model_text() -> None:
    # dump_model() writes thresholds through AvoidInf (+-1e300); a split between -inf and -1e300 is
    # really at -DBL_MAX, so -1e300 routes right in LightGBM but left on the dumped threshold.
    rng = np.random.default_rng(3)
    n = 400
    x = rng.normal(size=n)
    x[:60] = -np.inf
    x[60:120] = -1e300
    y = np.zeros(n)
    y[60:120] = 1.0
    y[120:] = rng.random(n - 120) < 0.5
    params = {"objective": "binary", "verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(x.reshape(-1, 1), y, feature_name=["f0"]), 3)
    dump = booster.dump_model()
    inputs = [{"name": "v", "kind": "numeric"}]
    assert "-1e+300" in str(dump["tree_info"]), "the dump no longer clamps: revisit model_text"
    probe = np.array([[-1e300], [-np.inf], [-1.5e300], [-1.7976931348623157e308], [0.0]])
    expected = booster.predict(probe, raw_score=True, num_threads=1)
    rows = [{"v": v} for v in (-1e300, "-Infinity", -1.5e300, -1.7976931348623157e308, 0.0)]

    exact = load_model(
        model_state_from_dump(
            dump, feature_names=["v"], input_features=inputs, model_text=booster.model_to_string()
        )
    )
    assert [exact.raw_margin(row) for row in rows] == list(expected)
    # model_state_from_dump takes its dump over: the lossy state needs a fresh one.
    lossy = load_model(
        model_state_from_dump(booster.dump_model(), feature_names=["v"], input_features=inputs)
    )
    assert lossy.raw_margin(rows[0]) != expected[0]


def test_a_one_hot_unseen_or_missing_category_scores_as_all_zeros() -> None:
    case = fixed_case("onehot_sigmoid_early_stopping")
    model = load_model(case.state)
    base = case.rows[0]
    zeros = [*model.encode({**base, "channel": "email"})]
    names, _, _ = layout(case.recipe)
    for column, name in enumerate(names):
        if name.startswith("channel="):
            zeros[column] = 0.0
    for value in (None, "never-seen", "EMAIL", 3):
        assert model.encode({**base, "channel": value}) == zeros
        assert model.raw_margin({**base, "channel": value}) == model.raw_margin(zeros)


def test_score_batch_equals_row_by_row() -> None:
    case = fixed_case("native_categorical")
    model = load_model(case.state)
    assert model.score_batch(case.rows[:20]) == [model.score(row) for row in case.rows[:20]]


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(recipe=recipes())
def test_random_models_match_lightgbm(recipe: Recipe) -> None:
    assert_parity(build_case(recipe))


def test_the_routing_table_matches_lightgbm_on_hand_written_splits() -> None:
    probes = crafted_probes()
    matrix = np.array(probes).reshape(-1, 1)
    boosters = crafted_boosters()
    assert len(boosters) == 3 * 2 * (len(CRAFTED_THRESHOLDS) + len(CRAFTED_CATEGORY_SETS))
    for label, booster in boosters:
        expected = booster.predict(matrix, raw_score=True, num_threads=1)
        model = load_model(crafted_state(booster))
        actual = [model.raw_margin([value]) for value in probes]
        wrong = [(v, a, e) for v, a, e in zip(probes, actual, expected, strict=True) if a != e]
        assert not wrong, f"{label}: (input, scorer, lightgbm) {wrong[:4]}"


def test_lightgbm_states_conform_to_the_published_json_schema() -> None:
    schema = json.loads((REPO / "schemas" / "model_state.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema_rs.Draft202012Validator(schema)
    for name in sorted(RECIPES):
        state = fixed_case(name).state
        assert validator.is_valid(state), (name, [str(e) for e in validator.iter_errors(state)][:3])
