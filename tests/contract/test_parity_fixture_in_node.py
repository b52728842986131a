"""The pre-activation check of scorers/js/README.md, run as written: a /train/gbm answer with
`includeParityFixture` verified by the JavaScript scorer in Node."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from starlette.testclient import TestClient

from support.app import make_app
from support.node_parity import verify_in_node


@pytest.mark.parametrize("encoding", ["onehot", "native"])
def test_the_js_scorer_verifies_a_trained_model_with_its_fixture(encoding: str) -> None:
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
    report = verify_in_node(answer.text)
    assert report is not None
    assert report["ok"] is True
    assert report["checked"] == len(answer.json()["parityFixture"]["rows"]) > 200
    assert report["maxAbsDiff"] <= 1e-12
