"""Parity of the JavaScript scorer (scorers/js/index.mjs, run by Node) with LightGBM and the Python scorer.

Rows travel as JSON: null is a missing value, "Infinity"/"-Infinity" strings are the infinities
(scorers/js/README.md). Raw margins come back through JSON.stringify (shortest round-trip form), so
the comparison with `Booster.predict(raw_score=True)` is exact.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gbm_cases import (
    FIXED_RECIPES,
    JS_INDEX,
    REPO,
    JsScorer,
    Recipe,
    build_case,
    crafted_boosters,
    crafted_probes,
    crafted_state,
    node_or_skip,
    recipes,
    to_json_number,
)
from hypothesis import HealthCheck, given, settings

from domain.gbm.model_state import UnsupportedModel, validate_model_state
from domain.gbm.scorer import load_model

TOLERANCE = 1e-12
FIXTURES = REPO / "scorers" / "js" / "test" / "fixtures"

ONE_SHOT = """
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const { loadModel, score } = await import(process.argv[2]);
const dir = process.argv[3];
for (const file of readdirSync(dir).filter((f) => f.endsWith('.case.json'))) {
  const input = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const model = loadModel(input.state);
  const output = {
    rows: input.rows.map((r) => score(model, r)),
    arrays: input.arrays.map((r) => score(model, r)),
  };
  writeFileSync(join(dir, file.replace('.case.json', '.scored.json')), JSON.stringify(output));
}
"""


def assert_js_matches(reply: dict[str, Any], raw: np.ndarray, prob: np.ndarray, label: str) -> None:
    assert "error" not in reply, f"{label}: the JS scorer refused the model: {reply.get('error')}"
    js_raw = np.array(reply["raw"], dtype=np.float64)
    wrong = np.nonzero(js_raw != raw)[0]
    assert wrong.size == 0, f"{label}: JS raw margins differ from LightGBM at rows {wrong[:5].tolist()}"
    assert np.max(np.abs(np.array(reply["score"]) - prob), initial=0.0) <= TOLERANCE
    assert np.max(np.abs(np.array(reply["credit"]) - js_raw), initial=0.0) <= 1e-9


def test_fixed_models_scored_by_a_node_script_match_lightgbm(tmp_path: Path) -> None:
    node = node_or_skip()
    cases = {recipe.name: build_case(recipe) for recipe in FIXED_RECIPES}
    for name, case in cases.items():
        payload = {"state": case.state, "rows": case.rows, "arrays": case.arrays}
        (tmp_path / f"{name}.case.json").write_text(json.dumps(payload, allow_nan=False), encoding="utf-8")
    script = tmp_path / "score_dir.mjs"
    script.write_text(ONE_SHOT, encoding="utf-8")
    subprocess.run([node, str(script), JS_INDEX.as_uri(), str(tmp_path)], check=True, timeout=60)
    for name, case in cases.items():
        scored = json.loads((tmp_path / f"{name}.scored.json").read_text(encoding="utf-8"))
        python = load_model(case.state)
        checks: list[tuple[str, list[Any], np.ndarray, np.ndarray]] = [
            ("rows", list(case.rows), case.raw, case.prob),
            ("arrays", list(case.arrays), case.arrays_raw, case.arrays_prob),
        ]
        for kind, rows, raw, prob in checks:
            js = scored[kind]
            js_raw = np.array([s["rawMargin"] for s in js])
            assert np.array_equal(js_raw, raw), f"{name} {kind}: JS raw margins differ from LightGBM"
            assert np.max(np.abs(np.array([s["score"] for s in js]) - prob)) <= TOLERANCE
            for row, s in zip(rows, js, strict=True):
                expected = python.score(row)
                assert list(s["contributions"]) == list(expected.contributions)
                for feature, value in expected.contributions.items():
                    assert abs(s["contributions"][feature] - value) <= TOLERANCE, (name, feature, row)
                assert s["baseValue"] == expected.base_value


def test_the_routing_table_matches_lightgbm_in_node(js_scorer: JsScorer) -> None:
    probes = crafted_probes()
    rows = [[to_json_number(value)] for value in probes]
    matrix = np.array(probes).reshape(-1, 1)
    for label, booster in crafted_boosters():
        raw = np.asarray(booster.predict(matrix, raw_score=True, num_threads=1))
        prob = np.asarray(booster.predict(matrix, num_threads=1))
        assert_js_matches(js_scorer.score(crafted_state(booster), rows), raw, prob, label)


def test_checked_in_fixtures_agree_with_the_python_scorer() -> None:
    # Guards the fixtures against drifting from the Python reference (regenerate with make_js_fixtures.py).
    files = sorted(path for path in FIXTURES.glob("*.json") if path.name != "rejected_models.json")
    assert len(files) >= 5
    for path in files:
        fixture = json.loads(path.read_text(encoding="utf-8"))
        model = load_model(fixture["modelState"])
        assert [model.raw_margin(row) for row in fixture["rows"]] == fixture["expected"]["rawMargin"], (
            path.name
        )
        assert [model.raw_margin(row) for row in fixture["arrays"]] == fixture["arraysExpected"]["rawMargin"]


def test_both_scorers_refuse_the_rejected_fixtures(js_scorer: JsScorer) -> None:
    entries = json.loads((FIXTURES / "rejected_models.json").read_text(encoding="utf-8"))
    assert any(entry["modelState"].get("schema_version") not in (None, 1) for entry in entries)
    for entry in entries:
        with pytest.raises(UnsupportedModel, match=entry["error"]):
            validate_model_state(entry["modelState"])
        reply = js_scorer.score(entry["modelState"], [])
        assert reply.get("error", "").startswith("UnsupportedModelError"), entry["description"]
        assert entry["error"] in reply["error"], (entry["description"], reply["error"])


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(recipe=recipes())
def test_random_models_match_lightgbm_in_node(js_scorer: JsScorer, recipe: Recipe) -> None:
    case = build_case(recipe)
    assert_js_matches(js_scorer.score(case.state, case.rows), case.raw, case.prob, "rows")
    assert_js_matches(js_scorer.score(case.state, case.arrays), case.arrays_raw, case.arrays_prob, "arrays")


def test_infinite_and_missing_values_travel_as_documented() -> None:
    assert [to_json_number(v) for v in (math.nan, math.inf, -math.inf, 1.5)] == [
        None,
        "Infinity",
        "-Infinity",
        1.5,
    ]
