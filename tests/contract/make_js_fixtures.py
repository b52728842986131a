"""Regenerate the checked-in fixtures of the JavaScript scorer's `node --test` suite.

    .venv/bin/python tests/contract/make_js_fixtures.py

Writes scorers/js/test/fixtures/<case>.json for a few small seeded LightGBM models (see gbm_cases):
`modelState`, raw `rows` (null = missing; "Infinity"/"-Infinity" strings), already-encoded `arrays`,
LightGBM's own raw and probability scores for both, and the Python reference scorer's contributions.
Also writes rejected_models.json: modelStates that both scorers must refuse, with the reason.
Deterministic: rerunning with the same LightGBM version rewrites identical files.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import lightgbm  # noqa: E402
from gbm_cases import FIXED_RECIPES, NumericSpec, Recipe, build_case  # noqa: E402

from domain.gbm.model_state import content_hash  # noqa: E402
from domain.gbm.scorer import load_model  # noqa: E402

FIXTURES = HERE.parents[1] / "scorers" / "js" / "test" / "fixtures"
CASES = (
    "numeric_nan",
    "zero_as_missing",
    "no_missing_use",
    "native_categorical",
    "onehot_sigmoid_early_stopping",
    "extremes",
)


def fixture(name: str) -> dict[str, Any]:
    case = build_case(next(recipe for recipe in FIXED_RECIPES if recipe.name == name))
    model = load_model(case.state)
    return {
        "name": name,
        "generator": f"tests/contract/make_js_fixtures.py (lightgbm {lightgbm.__version__})",
        "modelState": case.state,
        "rows": case.rows,
        "expected": {
            "rawMargin": case.raw.tolist(),
            "score": case.prob.tolist(),
            "contributions": [model.score(row).contributions for row in case.rows],
        },
        "arrays": case.arrays,
        "arraysExpected": {"rawMargin": case.arrays_raw.tolist(), "score": case.arrays_prob.tolist()},
    }


def rejected(valid: dict[str, Any]) -> list[dict[str, Any]]:
    """Mutations of a valid state, each with the words its refusal must contain."""

    def mutate(description: str, error: str, change: Any, rehash: bool = True) -> dict[str, Any]:
        state = copy.deepcopy(valid)
        change(state)
        if rehash:
            state["content_hash"] = content_hash(state)
        return {"description": description, "error": error, "modelState": state}

    def first_leaf(state: dict[str, Any]) -> dict[str, Any]:
        node = state["trees"][0]["tree_structure"]
        while "split_feature" in node:
            node = node["left_child"]
        leaf: dict[str, Any] = node
        return leaf

    return [
        mutate("a future schema_version", "schema_version", lambda s: s.update(schema_version=3)),
        mutate("schema_version missing", "schema_version", lambda s: s.pop("schema_version")),
        mutate("a regression objective", "objective", lambda s: s.update(objective="regression")),
        mutate("a multiclass model", "num_class", lambda s: s.update(num_class=3)),
        mutate("a softmax link", "link", lambda s: s.update(link="softmax")),
        mutate("linear trees", "linear", lambda s: first_leaf(s).update(leaf_coeff=[0.5], leaf_features=[0])),
        mutate(
            "an unknown decision type",
            "decision_type",
            lambda s: s["trees"][0]["tree_structure"].update(decision_type="<"),
        ),
        mutate(
            "a split on a feature that does not exist",
            "feature",
            lambda s: s["trees"][0]["tree_structure"].update(split_feature=99),
        ),
        mutate(
            "an input feature without columns",
            "input",
            lambda s: s["input_features"].append({"name": "ghost", "kind": "numeric"}),
        ),
        mutate(
            "a malformed content hash", "content_hash", lambda s: s.update(content_hash="md5:1"), rehash=False
        ),
        mutate("trees is not an array", "trees", lambda s: s.update(trees={})),
        mutate(
            "a categorical code too large for a bitset",
            "categorical code above",
            lambda s: s["trees"][0]["tree_structure"].update(decision_type="==", threshold="1||16777216"),
        ),
    ]


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in CASES:
        data = fixture(name)
        path = FIXTURES / f"{name}.json"
        path.write_text(json.dumps(data, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parents[1])} ({path.stat().st_size // 1024} KiB)")
    tiny = build_case(
        Recipe(
            "tiny",
            seed=18,
            n_rows=100,
            numeric=(NumericSpec("a"),),
            rounds=2,
            params={"num_leaves": 3, "min_data_in_leaf": 5},
        )
    )
    path = FIXTURES / "rejected_models.json"
    path.write_text(
        json.dumps(rejected(tiny.state), ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
    print(f"wrote {path.relative_to(HERE.parents[1])}")


if __name__ == "__main__":
    main()
