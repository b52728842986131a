"""A trained model stored and sent back by the platform's Node (JSON.parse, then JSON.stringify) keeps
its content_hash: the worker hashes numbers by value."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gbm_cases import node_or_skip

from adapters.frames import PolarsDataset
from adapters.gbm.trainer import LightGbmTrainer
from domain.gbm.model_state import content_hash, validate_model_state
from domain.gbm.training import Calibration, GbmParams, GbmTrainingSpec, plan_features
from domain.progress import no_progress


def test_a_calibrated_model_with_a_reference_survives_nodes_json() -> None:
    node = node_or_skip()
    rng = np.random.default_rng(7)
    n = 400
    x = rng.normal(size=n)
    frame = pl.DataFrame(
        {"x": x, "flag": rng.integers(0, 2, n), "y": (x + rng.normal(size=n) > 0).astype(int)}
    )
    spec = GbmTrainingSpec(label="y", calibration=Calibration.PLATT, params=GbmParams(num_iterations=20))
    dataset = PolarsDataset(frame)
    state = (
        LightGbmTrainer().train(dataset, spec, plan_features(spec, dataset.schema), no_progress).model_state
    )
    text = json.dumps(state)
    through = subprocess.run(
        [
            node,
            "-e",
            "let s = ''; process.stdin.on('data', (d) => { s += d; })"
            ".on('end', () => process.stdout.write(JSON.stringify(JSON.parse(s))));",
        ],
        input=text,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert through != text  # Node wrote some numbers differently (1.0 as 1, at least the sigmoid)
    back = json.loads(through)
    validate_model_state(back)
    assert content_hash(back) == state["content_hash"]
