"""The pre-activation check of scorers/js/README.md, run as written: a /train/gbm answer with
`includeParityFixture` verified by the JavaScript scorer in Node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from support.app import make_app

ROOT = Path(__file__).resolve().parents[2]
CHECK = """
import { readFileSync } from "node:fs";
import { loadModel, verifyParity } from "%s";
const { modelState, parityFixture: fixture } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const model = loadModel(modelState);
const report = verifyParity(model, fixture.rows, fixture.rawScores);
console.log(JSON.stringify({ok: report.ok, checked: report.checked, maxAbsDiff: report.maxAbsDiff}));
"""


@pytest.mark.parametrize("encoding", ["onehot", "native"])
def test_the_js_scorer_verifies_a_trained_model_with_its_fixture(tmp_path: Path, encoding: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    rng = np.random.default_rng(9)
    n = 1200
    x = rng.normal(size=n)
    x[rng.random(n) < 0.1] = np.nan
    region = rng.choice(["north", "south", "east"], n).tolist()
    y = (np.nan_to_num(x) + (np.array(region) == "east") + rng.normal(0, 0.5, n) > 0.5).astype(int)
    body = {
        "data": {
            "columns": {"x": [None if np.isnan(v) else v for v in x], "region": region, "y": y.tolist()}
        },
        "label": "y",
        "categoricalEncoding": encoding,
        "params": {"numIterations": 40},
        "includeParityFixture": True,
    }
    with TestClient(make_app()) as client:
        answer = client.post("/train/gbm", json=body)
    assert answer.status_code == 200, answer.text
    (tmp_path / "answer.json").write_text(answer.text)
    script = tmp_path / "check.mjs"
    script.write_text(CHECK % (ROOT / "scorers/js/index.mjs").as_uri())
    run = subprocess.run(
        [node, str(script), str(tmp_path / "answer.json")], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["ok"] is True
    assert report["checked"] == len(answer.json()["parityFixture"]["rows"]) > 200
    assert report["maxAbsDiff"] <= 1e-12
