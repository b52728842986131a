"""Fixtures of the model-contract tests: a Node process running scorers/js (helpers live in gbm_cases)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# Importable whatever pytest's import mode: the test modules share gbm_cases.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from gbm_cases import NDJSON_RUNNER, JsScorer, node_or_skip  # noqa: E402


@pytest.fixture(scope="module")
def js_scorer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsScorer]:
    node = node_or_skip()
    script = tmp_path_factory.mktemp("js-runner") / "score_ndjson.mjs"
    script.write_text(NDJSON_RUNNER, encoding="utf-8")
    scorer = JsScorer(node, script)
    try:
        yield scorer
    finally:
        scorer.close()
