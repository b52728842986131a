"""The numpy batch scorer (adapters/gbm/batch_scorer.py) against the pure-Python reference scorer and
LightGBM itself: raw margins bit-identical on the seeded cases (NaN, zero-as-missing, native and
one-hot categoricals, extremes), on encoded arrays probing the routing edges, and on hand-written
one-split models of every (threshold, missing_type, default_left) and category set."""

from __future__ import annotations

import copy
import functools
import math
import sys
from typing import Any

import numpy as np
import polars as pl
import pytest
from gbm_cases import (
    FIXED_RECIPES,
    UNSEEN,
    Case,
    Recipe,
    build_case,
    crafted_boosters,
    crafted_probes,
    crafted_state,
    from_json_number,
    recipes,
)
from hypothesis import HealthCheck, given, settings

from adapters.gbm.batch_scorer import BatchScorer, category_codes, isotonic, numeric_values
from domain.errors import ValidationFailed
from domain.gbm.model_state import attach_blocks
from domain.gbm.scorer import load_model

RECIPES = {recipe.name: recipe for recipe in FIXED_RECIPES}


@functools.cache
def fixed_case(name: str) -> Case:
    return build_case(RECIPES[name])


def frame_of(recipe: Recipe, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The rows as a data source would hold them: numbers as Float64 (a missing one null, or NaN for
    every other missing one, both of which mean missing), categories as text."""
    columns: dict[str, pl.Series] = {}
    for spec in recipe.numeric:
        values = [row.get(spec.name) for row in rows]
        floats = [None if v is None and i % 2 else from_json_number(v) for i, v in enumerate(values)]
        columns[spec.name] = pl.Series(spec.name, floats, dtype=pl.Float64)
    for cat in recipe.categorical:
        columns[cat.name] = pl.Series(cat.name, [row.get(cat.name) for row in rows], dtype=pl.String)
    return pl.DataFrame(list(columns.values()))


def _clamps_infinity(state: dict[str, Any]) -> bool:
    """Whether a threshold LightGBM holds as +-inf is in the state as +-DBL_MAX (JSON has no
    infinity, adapters/gbm/model_dump.py): then an infinite input may route otherwise than in
    LightGBM, in both scorers alike, and only finite inputs can be compared with LightGBM."""
    stack = [tree["tree_structure"] for tree in state["trees"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            if node["decision_type"] == "<=" and abs(node["threshold"]) == sys.float_info.max:
                return True
            stack.extend((node["left_child"], node["right_child"]))
    return False


def assert_batch_parity(case: Case) -> None:
    scorer = BatchScorer(case.state)
    reference = load_model(case.state)
    scored = scorer.score_frame(frame_of(case.recipe, case.rows))
    expected = np.array([reference.raw_margin(row) for row in case.rows])
    assert np.array_equal(scored.raw_margin, expected), "raw margins differ from the reference scorer"
    arrays = np.array([[from_json_number(v) for v in row] for row in case.arrays], dtype=np.float64)
    arrays_raw = scorer.raw_margins(arrays)
    assert np.array_equal(arrays_raw, [reference.raw_margin(row) for row in case.arrays])
    comparable = np.ones(len(case.rows), dtype=bool)
    comparable_arrays = np.ones(len(arrays), dtype=bool)
    if _clamps_infinity(case.state):
        matrix = BatchScorer(case.state).encode(frame_of(case.recipe, case.rows))
        comparable = ~np.isinf(matrix).any(axis=1)
        comparable_arrays = ~np.isinf(arrays).any(axis=1)
    assert np.array_equal(scored.raw_margin[comparable], case.raw[comparable]), "differs from LightGBM"
    assert np.array_equal(arrays_raw[comparable_arrays], case.arrays_raw[comparable_arrays])
    assert np.max(np.abs(scored.score - case.prob)[comparable]) <= 1e-12
    assert scored.score.tolist() == [s.score for s in reference.score_batch(case.rows)]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_fixed_cases_score_as_the_reference_scorer_and_lightgbm(name: str) -> None:
    assert_batch_parity(fixed_case(name))


@pytest.mark.parametrize("name", ["native_categorical", "onehot_sigmoid_early_stopping"])
def test_the_frame_encoding_is_the_reference_scorers(name: str) -> None:
    case = fixed_case(name)
    reference = load_model(case.state)
    encoded = BatchScorer(case.state).encode(frame_of(case.recipe, case.rows))
    expected = np.array([reference.encode(row) for row in case.rows])
    assert np.array_equal(encoded, expected, equal_nan=True)
    assert any(row.get(c.name) == UNSEEN for row in case.rows for c in case.recipe.categorical)


def test_progress_rises_to_one_and_a_single_leaf_tree_scores_its_leaf() -> None:
    case = fixed_case("numeric_nan")
    reports: list[float] = []
    BatchScorer(case.state).score_frame(frame_of(case.recipe, case.rows), lambda f, m="": reports.append(f))
    assert reports and reports == sorted(reports) and reports[-1] == 1.0
    stump = copy.deepcopy(case.state)
    stump["trees"] = [{**stump["trees"][0], "tree_structure": {"leaf_value": 0.25}}, *stump["trees"][:2]]
    stump = attach_blocks(stump)  # rehashed
    rows = case.rows[:20]
    expected = [load_model(stump).raw_margin(row) for row in rows]
    assert BatchScorer(stump).score_frame(frame_of(case.recipe, rows)).raw_margin.tolist() == expected


def test_the_routing_table_matches_lightgbm_on_hand_written_splits() -> None:
    probes = np.array(crafted_probes()).reshape(-1, 1)
    for label, booster in crafted_boosters():
        expected = booster.predict(probes, raw_score=True, num_threads=1)
        actual = BatchScorer(crafted_state(booster)).raw_margins(probes)
        wrong = [(v, a, e) for v, a, e in zip(probes[:, 0], actual, expected, strict=True) if a != e]
        assert not wrong, f"{label}: (input, batch scorer, lightgbm) {wrong[:4]}"


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(recipe=recipes())
def test_random_models_score_as_lightgbm(recipe: Recipe) -> None:
    assert_batch_parity(build_case(recipe))


def test_categories_match_by_category_key_whatever_the_column_type() -> None:
    categories = ["3", "true", "north"]
    assert np.array_equal(
        category_codes(pl.Series("c", [3, 4, None, 3]), categories),
        [0.0, np.nan, np.nan, 0.0],
        equal_nan=True,
    )
    assert np.array_equal(
        category_codes(pl.Series("c", [3.0, 3.5, math.nan]), categories),
        [0.0, np.nan, np.nan],
        equal_nan=True,
    )
    assert np.array_equal(
        category_codes(pl.Series("c", [True, False]), categories), [1.0, np.nan], equal_nan=True
    )
    as_categorical = pl.Series("c", ["north", "south", None], dtype=pl.Categorical)
    assert np.array_equal(category_codes(as_categorical, categories), [2.0, np.nan, np.nan], equal_nan=True)


def test_numeric_inputs_read_booleans_and_the_json_stand_ins_and_refuse_other_text() -> None:
    assert numeric_values(pl.Series("b", [True, False, None])).tolist()[:2] == [1.0, 0.0]
    stand_ins = numeric_values(pl.Series("s", ["Infinity", "-Infinity", "NaN", None]))
    assert stand_ins[:2].tolist() == [math.inf, -math.inf] and np.isnan(stand_ins[2:]).all()
    with pytest.raises(ValidationFailed) as refused:
        numeric_values(pl.Series("income", ["12", "n/a"]))
    assert refused.value.details[0]["field"] == "income"


def test_isotonic_is_formats_expression_at_and_between_the_breakpoints() -> None:
    x = np.array([0.1, 0.4, 0.8])
    y = np.array([0.05, 0.3, 0.9])
    p = np.array([0.0, 0.1, 0.25, 0.4, 0.6, 0.8, 0.95])
    expected = [0.05, 0.05, 0.05 + 0.15 * (0.25 / 0.3), 0.3, 0.3 + 0.2 * (0.6 / 0.4), 0.9, 0.9]
    assert isotonic(x, y, p).tolist() == pytest.approx(expected, abs=1e-15)
    assert isotonic(np.array([0.5]), np.array([0.2]), np.array([0.1, 0.9])).tolist() == [0.2, 0.2]


CALIBRATIONS = {
    "isotonic": {
        "method": "isotonic",
        "fitted_on": 100,
        "source": "validation",
        "x": [0.2, 0.35, 0.5, 0.52, 0.7],
        "y": [0.0, 0.1, 0.4, 0.45, 1.0],
    },
    "platt": {"method": "platt", "fitted_on": 100, "source": "cross_fitted", "a": 1.7, "b": -0.3},
    "platt_overflow": {"method": "platt", "fitted_on": 100, "source": "validation", "a": 5000.0, "b": 0.0},
}


@pytest.mark.parametrize("method", sorted(CALIBRATIONS))
@pytest.mark.parametrize("name", ["native_categorical", "onehot_sigmoid_early_stopping"])
def test_calibrated_scores_equal_the_reference_scorers_to_the_last_bit(name: str, method: str) -> None:
    case = fixed_case(name)
    state = attach_blocks(copy.deepcopy(case.state), calibration=CALIBRATIONS[method])
    reference = load_model(state)
    scored = BatchScorer(state).score_frame(frame_of(case.recipe, case.rows))
    expected = reference.score_batch(case.rows)
    assert scored.score.tolist() == [s.score for s in expected]
    assert scored.raw_margin.tolist() == [s.raw_margin for s in expected]  # never calibrated
    assert not np.array_equal(scored.score, scored.probability)
