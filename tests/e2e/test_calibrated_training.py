"""POST /train/gbm with calibration, cross-validation and the drift reference, through the real app:
the answer matches the contract, the model carries both blocks, and the Python scorer applies them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from domain.gbm.scorer import load_model
from entrypoints import contract as c
from support.app import app_client
from support.http import error_of, fields_of

pytestmark = pytest.mark.timeout(120)

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "model_state.schema.json").read_text(encoding="utf-8")
)


def columns(n: int = 600, seed: int = 21) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    return {
        "signal": [round(float(v), 6) for v in signal],
        "colour": rng.choice(["red", "green", "blue"], size=n).tolist(),
        "converted": (rng.random(n) < 1 / (1 + np.exp(-2 * signal))).astype(int).tolist(),
    }


async def test_isotonic_calibration_with_three_folds_over_http() -> None:
    data = columns()
    request = {
        "data": {"columns": data},
        "label": "converted",
        "calibration": "isotonic",
        "cvFolds": 3,
        "validationFraction": 0.25,
        "params": {"numIterations": 40, "numLeaves": 63, "minDataInLeaf": 2},
    }
    async with app_client() as client:
        response = await client.post("/train/gbm", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    c.TrainGbmResponse.model_validate(body)
    metrics = body["metrics"]
    assert metrics["calibration"]["method"] == "isotonic"
    assert metrics["calibration"]["fittedOn"] == metrics["validationSamples"] == 150
    assert metrics["crossValidation"]["folds"] == 3
    assert 0.7 < metrics["crossValidation"]["aucMean"] < 1
    assert {"calibrate", "crossValidate"} <= set(body["durationMs"])
    state = body["modelState"]
    assert state["schema_version"] == 2 and {"calibration", "reference"} <= set(state)
    assert jsonschema_rs.Draft202012Validator(SCHEMA).is_valid(state)
    assert state["calibration"]["source"] == "validation"
    assert state["reference"]["rows"] == metrics["trainingSamples"] == 450
    # The scorer answers the calibrated score: the breakpoints interpolated at LightGBM's probability.
    model = load_model(state)
    names = list(data)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*data.values(), strict=True)]
    scores = [model.score(row) for row in rows]
    calibrated = np.array([s.score for s in scores])
    probability = 1 / (1 + np.exp(-np.array([s.raw_margin for s in scores])))
    expected = np.interp(probability, state["calibration"]["x"], state["calibration"]["y"])
    np.testing.assert_allclose(calibrated, expected, rtol=0, atol=1e-12)
    assert not np.allclose(calibrated, probability, atol=1e-3)
    assert roc_auc_score(data["converted"], calibrated) > 0.75


@pytest.mark.parametrize("folds", [1, 2, 11])
async def test_cv_folds_outside_0_or_3_to_10_is_422_naming_cv_folds(folds: int) -> None:
    request = {"data": {"columns": columns(40)}, "label": "converted", "cvFolds": folds}
    async with app_client() as client:
        error = error_of(await client.post("/train/gbm", json=request), 422, "VALIDATION_ERROR")
    assert "cvFolds" in fields_of(error)
    assert "cv_folds" not in json.dumps(error)


async def test_too_few_validation_rows_to_calibrate_is_422_naming_calibration() -> None:
    request = {"data": {"columns": columns(60)}, "label": "converted", "calibration": "platt"}
    async with app_client() as client:
        error = error_of(await client.post("/train/gbm", json=request), 422, "INSUFFICIENT_DATA")
    assert fields_of(error) == ["calibration"]
    assert "validationFraction" in error["message"]


async def test_a_bag_a_fold_model_would_draw_empty_is_422_naming_the_parameter() -> None:
    # 30 rows bag 1.35 rows, enough; a fold model's 20 rows would bag none (LightGBM fails inside).
    params = {"baggingFraction": 0.045, "baggingFreq": 1, "numIterations": 3, "minDataInLeaf": 2}
    base = {"data": {"columns": columns(30)}, "label": "converted", "validationFraction": 0, "params": params}
    async with app_client() as client:
        assert (await client.post("/train/gbm", json=base)).status_code == 200
        error = error_of(
            await client.post("/train/gbm", json={**base, "cvFolds": 3}), 422, "VALIDATION_ERROR"
        )
    assert fields_of(error) == ["params.baggingFraction"]
