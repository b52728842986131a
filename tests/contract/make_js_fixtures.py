"""Regenerate the checked-in fixtures of the JavaScript scorer's `node --test` suite.

    .venv/bin/python tests/contract/make_js_fixtures.py

Writes scorers/js/test/fixtures/<case>.json for a few small seeded LightGBM models (see gbm_cases):
`modelState`, raw `rows` (null = missing; "Infinity"/"-Infinity" strings), already-encoded `arrays`,
LightGBM's own raw and probability scores for both, and the Python reference scorer's contributions.

calibrated_*.json are two of those cases made version 2 (drift_cases): a calibration (isotonic,
Platt) and a drift reference attached. There `expected.score` is the Python scorer's calibrated score
(`expected.probability` LightGBM's), and `drift` holds batches (one drawn from the training rows, and
the same batch with one field shifted by a standard deviation or two categories swapped), each with
the Python domain's drift report and the fields that must come out drifted.

Also writes rejected_models.json: modelStates that both scorers must refuse, with the reason.
Deterministic: rerunning with the same LightGBM and scikit-learn versions rewrites identical files.
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
import sklearn  # noqa: E402
from drift_cases import (  # noqa: E402
    bootstrap,
    build_reference,
    calibrated_case,
    python_drift,
    shifted,
    spread,
    swapped,
    training_data,
)
from gbm_cases import FIXED_RECIPES, CategoricalSpec, NumericSpec, Recipe, build_case  # noqa: E402

from domain.gbm.model_state import attach_blocks, content_hash  # noqa: E402
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
# (fixture, seeded case, calibration method, numeric field to shift, categorical field to swap)
CALIBRATED = (
    ("calibrated_isotonic_reference", "native_categorical", "isotonic", "score", "région"),
    ("calibrated_platt_reference", "onehot_sigmoid_early_stopping", "platt", "delta", "channel"),
)
BATCH_ROWS = 300


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


def calibrated_fixture(
    name: str, case_name: str, method: str, numeric: str, categorical: str
) -> dict[str, Any]:
    case = build_case(next(recipe for recipe in FIXED_RECIPES if recipe.name == case_name))
    state = calibrated_case(case, method, with_performance=method == "platt")
    model = load_model(state)
    train_rows, _ = training_data(case.recipe)
    base = bootstrap(train_rows, BATCH_ROWS, seed=case.recipe.seed + 1)
    shares = next(f for f in state["reference"]["fields"] if f["name"] == categorical)["shares"]
    ranked = sorted(range(len(shares)), key=shares.__getitem__)
    categories = next(f for f in state["input_features"] if f["name"] == categorical)["categories"]
    common, rare = categories[ranked[-1]], categories[ranked[0]]
    batches = {
        "training": (base, []),
        f"shifted {numeric}": (shifted(base, numeric, spread(train_rows, numeric)), [numeric]),
        f"swapped {categorical}": (swapped(base, categorical, common, rare), [categorical]),
    }
    drift = {}
    for label, (rows, drifted) in batches.items():
        report = python_drift(state, rows)
        # The fixture means what its name says: exactly these fields drift.
        statuses = {field["field"]: field["status"] for field in report["fields"]}
        assert statuses == {f: "drifted" if f in drifted else "stable" for f in statuses}, (
            name,
            label,
            statuses,
        )
        drift[label] = {"rows": rows, "drifted": drifted, "expected": report}
    return {
        "name": name,
        "generator": (
            f"tests/contract/make_js_fixtures.py (lightgbm {lightgbm.__version__}, "
            f"scikit-learn {sklearn.__version__})"
        ),
        "modelState": state,
        "rows": case.rows,
        "expected": {
            "rawMargin": case.raw.tolist(),
            "score": [model.score(row).score for row in case.rows],
            "probability": case.prob.tolist(),
            "contributions": [model.score(row).contributions for row in case.rows],
        },
        "arrays": case.arrays,
        "arraysExpected": {
            "rawMargin": case.arrays_raw.tolist(),
            "score": [model.score(row).score for row in case.arrays],
        },
        "drift": drift,
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


def rejected_blocks(plain: Recipe, categorical: Recipe) -> list[dict[str, Any]]:
    """Version-2 states with malformed blocks, and version-1 states that carry blocks."""
    entries: list[dict[str, Any]] = []
    for recipe in (plain, categorical):
        case = build_case(recipe)
        rows, _ = training_data(recipe)
        model = load_model(case.state)
        reference = build_reference(case.state, rows, [model.score(row).score for row in rows])
        platt = {"method": "platt", "fitted_on": 100, "source": "validation", "a": 1.1, "b": -0.2}
        valid = attach_blocks(copy.deepcopy(case.state), calibration=platt, reference=reference)

        def mutate(description: str, error: str, change: Any, valid: dict[str, Any] = valid) -> None:
            state = copy.deepcopy(valid)
            change(state)
            state["content_hash"] = content_hash(state)
            entries.append({"description": description, "error": error, "modelState": state})

        def field(state: dict[str, Any]) -> dict[str, Any]:
            entry: dict[str, Any] = state["reference"]["fields"][0]
            return entry

        if recipe is categorical:
            mutate(
                "a reference whose categories are not the model's",
                "categories must equal the input feature's categories",
                lambda s: field(s).update(categories=field(s)["categories"][::-1]),
            )
            mutate(
                "a reference with a category share missing",
                "shares must hold one share per category",
                lambda s: field(s).update(shares=field(s)["shares"][1:]),
            )
            continue
        mutate(
            "schema_version 1 carrying calibration",
            "schema_version 1 cannot carry calibration",
            lambda s: (s.pop("reference"), s.update(schema_version=1)),
        )
        mutate(
            "schema_version 1 carrying a reference",
            "schema_version 1 cannot carry reference",
            lambda s: (s.pop("calibration"), s.update(schema_version=1)),
        )
        mutate(
            "an unknown calibration method",
            "calibration: method",
            lambda s: s["calibration"].update(method="beta"),
        )
        mutate(
            "a calibration without source", "calibration: source", lambda s: s["calibration"].pop("source")
        )
        mutate(
            "a negative fitted_on",
            "fitted_on must be a non-negative integer",
            lambda s: s["calibration"].update(fitted_on=-1),
        )
        mutate(
            "a Platt a of 0 (it would flatten the ranking)",
            "platt needs a finite a > 0",
            lambda s: s["calibration"].update(a=0.0),
        )
        mutate(
            "isotonic breakpoints not increasing",
            "isotonic x must be strictly increasing",
            lambda s: s.update(
                calibration={**s["calibration"], "method": "isotonic", "x": [0.5, 0.4], "y": [0.1, 0.2]}
            ),
        )
        mutate(
            "isotonic values decreasing",
            "isotonic y must be non-decreasing",
            lambda s: s.update(
                calibration={**s["calibration"], "method": "isotonic", "x": [0.4, 0.5], "y": [0.2, 0.1]}
            ),
        )
        mutate(
            "isotonic values outside [0, 1]",
            "isotonic x and y must be finite numbers",
            lambda s: s.update(
                calibration={**s["calibration"], "method": "isotonic", "x": [0.4, 0.5], "y": [0.2, 1.5]}
            ),
        )
        mutate(
            "a reference field under another name",
            "entry must carry the input feature's name and kind",
            lambda s: field(s).update(name="b"),
        )
        mutate(
            "reference edges not increasing",
            "edges must be strictly increasing",
            lambda s: field(s).update(edges=field(s)["edges"][::-1]),
        )
        mutate(
            "a reference with ten edges",
            "at most 9 finite numbers",
            lambda s: field(s).update(edges=list(range(10)), shares=[0.1] * 10 + [0.0]),
        )
        mutate(
            "reference shares not summing to 1",
            "shares must sum to 1",
            lambda s: field(s).update(missing_share=0.5),
        )
        mutate(
            "a reference without the score", "score must be an object", lambda s: s["reference"].pop("score")
        )
    return entries


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    written = [(name, fixture(name)) for name in CASES]
    written += [(spec[0], calibrated_fixture(*spec)) for spec in CALIBRATED]
    for name, data in written:
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
    tiny_categorical = Recipe(
        "tiny categorical",
        seed=19,
        n_rows=100,
        numeric=(),
        categorical=(CategoricalSpec("c", ("u", "v", "w"), "onehot", 0.1),),
        rounds=2,
        params={"num_leaves": 3, "min_data_in_leaf": 5},
    )
    entries = rejected(tiny.state) + rejected_blocks(tiny.recipe, tiny_categorical)
    path = FIXTURES / "rejected_models.json"
    path.write_text(json.dumps(entries, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(HERE.parents[1])}")


if __name__ == "__main__":
    main()
