"""The pre-activation check of scorers/js/README.md, run as written: a /train/gbm answer with
`includeParityFixture` verified by the JavaScript scorer in Node."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHECK = """
import { readFileSync } from "node:fs";
import { loadModel, verifyParity } from "%s";
const { modelState, parityFixture: fixture } = JSON.parse(readFileSync(process.argv[2], "utf8"));
const model = loadModel(modelState);
const report = verifyParity(model, fixture.rows, fixture.rawScores);
console.log(JSON.stringify({ok: report.ok, checked: report.checked, maxAbsDiff: report.maxAbsDiff}));
"""


def verify_in_node(answer_json: str) -> dict[str, Any] | None:
    """The JS scorer's parity report on the answer's own fixture; None when node is not installed
    (never in CI, where `.ci/run` installs it)."""
    node = shutil.which("node")
    if node is None:
        assert not os.environ.get("CI"), "node is required in CI"
        return None
    with tempfile.TemporaryDirectory() as directory:
        answer = Path(directory) / "answer.json"
        answer.write_text(answer_json)
        script = Path(directory) / "check.mjs"
        script.write_text(CHECK % (ROOT / "scorers/js/index.mjs").as_uri())
        run = subprocess.run([node, str(script), str(answer)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    report: dict[str, Any] = json.loads(run.stdout)
    return report
