"""Calibration and drift parity of the JavaScript scorer (scorers/js, run by Node) with the Python
scorer and the Python domain (`domain.gbm.reference`), on every seeded case made version 2.

Field drift involves no floating-point function the two runtimes could round differently (counts,
divisions, `log`), so it must agree to 1e-12. The score's drift depends on the scores themselves:
`Math.exp` and libm's `exp` differ by an ulp on some inputs, and a score within an ulp of a bin edge
may then fall in the neighbouring bin (with tied scores a decile edge sits exactly on a score, and a
whole tie group moves: on these cases 4 of 62 batches have a score PSI off by up to 0.24). So the JS
scores are checked against Python's (1e-12), and the JS score drift against the Python domain's drift
of those very JS scores.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from drift_cases import bootstrap, calibrated_case, python_drift, shifted, spread, swapped, training_data
from gbm_cases import FIXED_RECIPES, JS_INDEX, REPO, build_case, node_or_skip

from domain.gbm.reference import field_buckets, measure
from domain.gbm.scorer import load_model

TOLERANCE = 1e-12
FIXTURES = REPO / "scorers" / "js" / "test" / "fixtures"

RUNNER = """
import { readFileSync, writeFileSync } from 'node:fs';
const { driftPsi, loadModel, scoreBatch } = await import(process.argv[2]);
const requests = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const replies = requests.map(({ state, batches }) => {
  const model = loadModel(state);
  return {
    calibration: model.calibration,
    batches: batches.map((rows) => ({
      scores: scoreBatch(model, rows, { contributions: false }).map((s) => s.score),
      report: driftPsi(model, rows),
    })),
  };
});
writeFileSync(process.argv[4], JSON.stringify(replies));
"""


def batches_of(
    state: dict[str, Any], case_rows: list[dict[str, Any]], train: list[dict[str, Any]]
) -> list[Any]:
    """A batch from the training rows, each numeric field shifted, each categorical one swapped, and
    the case's scoring rows (missing values, infinities, unseen categories, an empty row)."""
    base = bootstrap(train, 200, seed=7)
    batches = [base, case_rows]
    for spec in state["input_features"]:
        if spec["kind"] == "numeric":
            batches.append(shifted(base, spec["name"], spread(train, spec["name"]) or 1.0))
        elif len(spec["categories"]) >= 2:
            batches.append(swapped(base, spec["name"], spec["categories"][0], spec["categories"][-1]))
    return batches


def assert_close(actual: Any, expected: Any, what: str) -> None:
    if expected is None:
        assert actual is None, what
    else:
        assert abs(actual - expected) <= TOLERANCE, f"{what}: JS {actual} vs Python {expected}"


def test_js_calibrated_scores_and_drift_equal_the_python_domain(tmp_path: Path) -> None:
    node = node_or_skip()
    requests = []
    for recipe in FIXED_RECIPES:
        case = build_case(recipe)
        train, _ = training_data(recipe)
        for method in ("isotonic", "platt"):
            state = calibrated_case(case, method)
            requests.append({"state": state, "batches": batches_of(state, case.rows, train)})
    source, target, script = tmp_path / "in.json", tmp_path / "out.json", tmp_path / "drift.mjs"
    source.write_text(json.dumps(requests, allow_nan=False, ensure_ascii=False), encoding="utf-8")
    script.write_text(RUNNER, encoding="utf-8")
    subprocess.run([node, str(script), JS_INDEX.as_uri(), str(source), str(target)], check=True, timeout=120)
    replies = json.loads(target.read_text(encoding="utf-8"))
    compared = 0
    for request, reply in zip(requests, replies, strict=True):
        state = request["state"]
        model = load_model(state)
        assert reply["calibration"] == state["calibration"]["method"]
        for rows, js in zip(request["batches"], reply["batches"], strict=True):
            label = f"{state['calibration']['method']} {[f['name'] for f in state['input_features']]}"
            python = python_drift(state, rows)
            for field, want in zip(js["report"]["fields"], python["fields"], strict=True):
                assert (field["field"], field["kind"], field["status"]) == (
                    want["field"],
                    want["kind"],
                    want["status"],
                ), label
                for key in ("psi", "ks", "missingShareChange"):
                    assert_close(field[key], want[key], f"{label} {field['field']} {key}")
            for js_score, row in zip(js["scores"], rows, strict=True):
                assert_close(js_score, model.score(row).score, f"{label} score of {row}")
            entry = state["reference"]["score"]
            of_js_scores = measure(entry, field_buckets(entry, js["scores"]))
            assert_close(js["report"]["score"]["psi"], of_js_scores.psi, f"{label} score psi")
            assert_close(js["report"]["score"]["ks"], of_js_scores.ks, f"{label} score ks")
            assert js["report"]["score"]["status"] == of_js_scores.status
            assert js["report"]["rows"] == len(rows)
            compared += 1
    assert compared >= 2 * len(FIXED_RECIPES) * 3


@pytest.mark.parametrize("name", ["calibrated_isotonic_reference", "calibrated_platt_reference"])
def test_checked_in_calibrated_fixtures_agree_with_the_python_domain(name: str) -> None:
    # Guards the fixtures against drifting from the Python reference (regenerate with make_js_fixtures.py).
    fixture = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    state = fixture["modelState"]
    model = load_model(state)
    assert state["schema_version"] == 2
    assert [model.score(row).score for row in fixture["rows"]] == fixture["expected"]["score"]
    for label, batch in fixture["drift"].items():
        assert python_drift(state, batch["rows"]) == batch["expected"], label
        drifted = {f["field"] for f in batch["expected"]["fields"] if f["status"] == "drifted"}
        assert drifted == set(batch["drifted"]), label
