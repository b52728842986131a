"""Seeded LightGBM models and scoring rows shared by the scorer parity tests and the JS fixtures.

A recipe describes raw fields (numeric with optional NaN/zeros/extremes at training time,
categoricals one-hot or native) and LightGBM params. `build_case` generates the data, encodes it the
way the trainer does (one-hot `field=category` columns, or native codes), trains with internal names
`f0..fN`, builds the modelState with `model_state_from_dump`, and computes LightGBM's own raw and
probability scores for raw rows (JSON-ready: null = missing, "Infinity"/"-Infinity" strings) and for
already-encoded arrays that probe the routing edges (thresholds and their next double, +-kZero,
fractional/negative/huge categorical codes).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from adapters.gbm.model_dump import model_state_from_dump
from domain.gbm.scorer import K_ZERO_THRESHOLD

REPO = Path(__file__).resolve().parents[2]
JS_INDEX = REPO / "scorers" / "js" / "index.mjs"
UNSEEN = "never-seen-category"
NUMERIC_EDGES: tuple[float, ...] = (
    math.nan,
    0.0,
    -0.0,
    math.inf,
    -math.inf,
    1e300,
    -1e300,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e-300,
    -1e-300,
    1e-35,
    -1e-35,
    K_ZERO_THRESHOLD,
    -K_ZERO_THRESHOLD,
    math.nextafter(K_ZERO_THRESHOLD, math.inf),
    -math.nextafter(K_ZERO_THRESHOLD, math.inf),
    -7.5,
    5e-324,
)
CODE_EDGES: tuple[float, ...] = (-1.0, -0.5, -0.0, 0.5, 1.999, 2147483647.0, 2147483648.0, 1e10, -1e10)


@dataclass(frozen=True)
class NumericSpec:
    name: str
    nan_frac: float = 0.0
    zero_frac: float = 0.0
    scale: float = 1.0
    negative: bool = True
    extremes: bool = False


@dataclass(frozen=True)
class CategoricalSpec:
    name: str
    categories: tuple[str, ...]
    encoding: str
    nan_frac: float = 0.0


@dataclass(frozen=True)
class Recipe:
    name: str
    seed: int
    n_rows: int
    numeric: tuple[NumericSpec, ...]
    categorical: tuple[CategoricalSpec, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    rounds: int = 10
    early_stopping: int | None = None
    num_iteration: int | None = None
    score_rows: int = 60


@dataclass
class Case:
    recipe: Recipe
    booster: lgb.Booster
    num_iteration: int | None
    state: dict[str, Any]
    rows: list[dict[str, Any]]
    raw: np.ndarray
    prob: np.ndarray
    arrays: list[list[Any]]
    arrays_raw: np.ndarray
    arrays_prob: np.ndarray


def to_json_number(value: float) -> float | str | None:
    """How a float travels in JSON rows: NaN as null, infinities as strings."""
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def from_json_number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
    return float(value)


def layout(recipe: Recipe) -> tuple[list[str], list[dict[str, Any]], list[int]]:
    """Column names, input_features and native categorical column indices, as the trainer lays them."""
    names: list[str] = []
    inputs: list[dict[str, Any]] = []
    native: list[int] = []
    for spec in recipe.numeric:
        names.append(spec.name)
        inputs.append({"name": spec.name, "kind": "numeric"})
    for cat in recipe.categorical:
        inputs.append(
            {
                "name": cat.name,
                "kind": "categorical",
                "encoding": cat.encoding,
                "categories": list(cat.categories),
            }
        )
        if cat.encoding == "onehot":
            names.extend(f"{cat.name}={category}" for category in cat.categories)
        else:
            native.append(len(names))
            names.append(cat.name)
    return names, inputs, native


def encode_rows(recipe: Recipe, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The test's own encoder (independent of the scorer): what LightGBM is given for raw rows."""
    names, _, _ = layout(recipe)
    column = {name: index for index, name in enumerate(names)}
    matrix = np.zeros((len(rows), len(names)), dtype=np.float64)
    for r, row in enumerate(rows):
        for spec in recipe.numeric:
            matrix[r, column[spec.name]] = from_json_number(row.get(spec.name))
        for cat in recipe.categorical:
            value = row.get(cat.name)
            if cat.encoding == "onehot":
                if value in cat.categories:
                    matrix[r, column[f"{cat.name}={value}"]] = 1.0
            else:
                matrix[r, column[cat.name]] = (
                    cat.categories.index(value) if value in cat.categories else np.nan
                )
    return matrix


def _raw_rows(recipe: Recipe, rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    columns: dict[str, list[Any]] = {}
    for spec in recipe.numeric:
        values = rng.normal(size=n) * spec.scale
        if not spec.negative:
            values = np.abs(values)
        values[rng.random(n) < spec.zero_frac] = 0.0
        if spec.extremes:
            picks = rng.random(n) < 0.1
            values[picks] = rng.choice([math.inf, -math.inf, 1e300, -1e300, 1e-300], size=int(picks.sum()))
        values[rng.random(n) < spec.nan_frac] = np.nan
        columns[spec.name] = [to_json_number(float(v)) for v in values]
    for cat in recipe.categorical:
        weights = rng.dirichlet(np.ones(len(cat.categories)))
        picked = rng.choice(len(cat.categories), size=n, p=weights)
        missing = rng.random(n) < cat.nan_frac
        columns[cat.name] = [None if m else cat.categories[i] for i, m in zip(picked, missing, strict=True)]
    return [{name: values[i] for name, values in columns.items()} for i in range(n)]


def _labels(recipe: Recipe, rng: np.random.Generator, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    logit = np.zeros(len(rows))
    for spec in recipe.numeric:
        weight, nan_effect = rng.normal(), rng.normal()
        values = np.array([from_json_number(row[spec.name]) for row in rows])
        with np.errstate(invalid="ignore", over="ignore"):
            effect = np.tanh(values / spec.scale)
        logit += weight * np.where(np.isnan(values), nan_effect, effect)
    for cat in recipe.categorical:
        effects = dict(zip(cat.categories, rng.normal(size=len(cat.categories)) * 1.5, strict=True))
        logit += np.array([effects.get(row[cat.name], 0.3) for row in rows])
    labels = (rng.random(len(rows)) < 1.0 / (1.0 + np.exp(-2.0 * logit))).astype(np.float64)
    if labels.min() == labels.max():  # LightGBM needs both classes to learn anything
        labels[: len(labels) // 2] = 1.0 - labels[0]
    return labels


def _numeric_thresholds(state: Mapping[str, Any]) -> dict[int, set[float]]:
    found: dict[int, set[float]] = {}
    for tree in state["trees"]:
        stack = [tree["tree_structure"]]
        while stack:
            node = stack.pop()
            if "split_feature" in node:
                if node["decision_type"] == "<=":
                    found.setdefault(node["split_feature"], set()).add(node["threshold"])
                stack.extend((node["left_child"], node["right_child"]))
    return found


def _scoring_rows(
    recipe: Recipe, rng: np.random.Generator, train_rows: list[dict[str, Any]], state: Mapping[str, Any]
) -> list[dict[str, Any]]:
    rows = [dict(row) for row in train_rows[: recipe.score_rows]]
    rows += _raw_rows(recipe, rng, recipe.score_rows // 2)
    base = train_rows[0]
    thresholds = _numeric_thresholds(state)
    names, _, _ = layout(recipe)
    for spec in recipe.numeric:
        column = names.index(spec.name)
        probes = list(NUMERIC_EDGES)
        for threshold in sorted(thresholds.get(column, ())):
            probes += [threshold, math.nextafter(threshold, math.inf), math.nextafter(threshold, -math.inf)]
        rows += [{**base, spec.name: to_json_number(value)} for value in probes]
    for cat in recipe.categorical:
        rows += [{**base, cat.name: value} for value in (*cat.categories, None, UNSEEN)]
    rows.append({})  # every field missing
    return rows


def _code_arrays(recipe: Recipe, matrix: np.ndarray) -> np.ndarray:
    """Encoded rows probing native categorical codes that raw rows cannot express."""
    names, _, native = layout(recipe)
    probes = [matrix[0].copy()]
    for column in native:
        cat = next(c for c in recipe.categorical if c.name == names[column])
        for code in (*CODE_EDGES, float(len(cat.categories) + 3), math.nan, math.inf, -math.inf):
            row = matrix[min(1, len(matrix) - 1)].copy()
            row[column] = code
            probes.append(row)
    return np.vstack([matrix, np.array(probes)])


def base_params(recipe: Recipe) -> dict[str, Any]:
    return {
        "objective": "binary",
        "verbose": -1,
        "num_threads": 1,
        "seed": recipe.seed,
        "deterministic": True,
        "force_col_wise": True,
        **recipe.params,
    }


def build_case(recipe: Recipe) -> Case:
    rng = np.random.default_rng(recipe.seed)
    names, inputs, native = layout(recipe)
    train_rows = _raw_rows(recipe, rng, recipe.n_rows)
    labels = _labels(recipe, rng, train_rows)
    matrix = encode_rows(recipe, train_rows)
    params = base_params(recipe)
    internal = [f"f{i}" for i in range(len(names))]
    callbacks: list[Any] = []
    valid_sets: list[lgb.Dataset] = []
    if recipe.early_stopping:
        cut = int(len(matrix) * 0.75)
        train = lgb.Dataset(
            matrix[:cut], labels[:cut], feature_name=internal, categorical_feature=native, params=params
        )
        valid_sets = [lgb.Dataset(matrix[cut:], labels[cut:], reference=train)]
        callbacks = [lgb.early_stopping(recipe.early_stopping, verbose=False)]
    else:
        train = lgb.Dataset(matrix, labels, feature_name=internal, categorical_feature=native, params=params)
    booster = lgb.train(params, train, recipe.rounds, valid_sets=valid_sets, callbacks=callbacks)
    iteration = recipe.num_iteration or (booster.best_iteration if booster.best_iteration > 0 else None)
    state = model_state_from_dump(
        booster.dump_model(num_iteration=iteration),
        feature_names=names,
        input_features=inputs,
        model_text=booster.model_to_string(num_iteration=iteration),
    )
    rows = _scoring_rows(recipe, rng, train_rows, state)
    row_matrix = encode_rows(recipe, rows)
    arrays = _code_arrays(recipe, row_matrix)

    def predict(data: np.ndarray, raw: bool) -> np.ndarray:
        return np.asarray(booster.predict(data, raw_score=raw, num_iteration=iteration, num_threads=1))

    return Case(
        recipe=recipe,
        booster=booster,
        num_iteration=iteration,
        state=state,
        rows=rows,
        raw=predict(row_matrix, True),
        prob=predict(row_matrix, False),
        arrays=[[to_json_number(float(v)) for v in row] for row in arrays],
        arrays_raw=predict(arrays, True),
        arrays_prob=predict(arrays, False),
    )


# Small fixed cases: the JS fixtures and the deterministic parity tests use them.
FIXED_RECIPES: tuple[Recipe, ...] = (
    Recipe(
        name="numeric_nan",
        seed=11,
        n_rows=400,
        numeric=(
            NumericSpec("age (years)", nan_frac=0.25),
            NumericSpec("balance €", scale=1e4),
            NumericSpec("tiny", scale=1e-6, nan_frac=0.1),
        ),
        params={"num_leaves": 7, "min_data_in_leaf": 5},
        rounds=12,
    ),
    Recipe(
        name="zero_as_missing",
        seed=12,
        n_rows=400,
        numeric=(NumericSpec("visits", zero_frac=0.4), NumericSpec("spend", zero_frac=0.3, nan_frac=0.1)),
        params={"num_leaves": 6, "min_data_in_leaf": 5, "zero_as_missing": True},
        rounds=10,
    ),
    Recipe(
        name="no_missing_use",
        seed=13,
        n_rows=300,
        numeric=(NumericSpec("x", nan_frac=0.3), NumericSpec("y", zero_frac=0.2)),
        params={"num_leaves": 5, "min_data_in_leaf": 5, "use_missing": False},
        rounds=8,
    ),
    Recipe(
        name="native_categorical",
        seed=14,
        n_rows=600,
        numeric=(NumericSpec("score", nan_frac=0.1),),
        categorical=(
            CategoricalSpec(
                "région", ("nord", "sud", "est", "ouest", "centre", "île", "a=b", ""), "native", 0.1
            ),
            CategoricalSpec("plan", ("free", "pro", "team"), "native"),
        ),
        params={
            "num_leaves": 8,
            "min_data_in_leaf": 5,
            "min_data_per_group": 5,
            "cat_smooth": 1.0,
            "max_cat_to_onehot": 2,
            "sigmoid": 0.5,
        },
        rounds=12,
    ),
    Recipe(
        name="onehot_sigmoid_early_stopping",
        seed=15,
        n_rows=600,
        numeric=(NumericSpec("recency", negative=False, nan_frac=0.05), NumericSpec("delta")),
        categorical=(CategoricalSpec("channel", ("email", "sms", "push", "web"), "onehot", 0.1),),
        params={"num_leaves": 6, "min_data_in_leaf": 5, "sigmoid": 2.5, "learning_rate": 0.3},
        rounds=60,
        early_stopping=3,
    ),
    Recipe(
        name="extremes",
        seed=16,
        n_rows=500,
        numeric=(NumericSpec("wild", extremes=True, nan_frac=0.05), NumericSpec("huge", scale=1e200)),
        params={"num_leaves": 8, "min_data_in_leaf": 3},
        rounds=10,
    ),
    Recipe(
        name="num_iteration",
        seed=17,
        n_rows=300,
        numeric=(NumericSpec("a", nan_frac=0.1), NumericSpec("b")),
        params={"num_leaves": 4, "min_data_in_leaf": 5},
        rounds=10,
        num_iteration=4,
    ),
)


CATEGORY_POOL = ("a", "b", "north", "sud-est", "ç", "x=y", "", " ", "1", "true", "NaN", "null", "日本")


def recipes() -> Any:
    """Hypothesis strategy of random recipes: NaN/zeros/extremes, one-hot and native categoricals, params."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw: Any) -> Recipe:
        n_numeric = draw(st.integers(0, 3))
        n_categorical = draw(st.integers(0 if n_numeric else 1, 2))
        numeric = tuple(
            NumericSpec(
                f"n{i}",
                nan_frac=draw(st.sampled_from((0.0, 0.15, 0.3))),
                zero_frac=draw(st.sampled_from((0.0, 0.3, 0.5))),
                scale=draw(st.sampled_from((1.0, 1e-5, 1e8, 1e250))),
                negative=draw(st.booleans()),
                extremes=draw(st.sampled_from((False, False, True))),
            )
            for i in range(n_numeric)
        )
        categorical = tuple(
            CategoricalSpec(
                f"c{i}",
                categories=tuple(
                    draw(st.lists(st.sampled_from(CATEGORY_POOL), min_size=1, max_size=8, unique=True))
                ),
                encoding=draw(st.sampled_from(("onehot", "native"))),
                nan_frac=draw(st.sampled_from((0.0, 0.2))),
            )
            for i in range(n_categorical)
        )
        rounds = draw(st.integers(1, 25))
        early = draw(st.sampled_from((None, None, 2)))
        params = {
            "num_leaves": draw(st.integers(2, 24)),
            "min_data_in_leaf": draw(st.integers(1, 10)),
            "zero_as_missing": draw(st.booleans()),
            "use_missing": draw(st.sampled_from((True, True, False))),
            "sigmoid": draw(st.sampled_from((0.3, 1.0, 2.5))),
            "learning_rate": draw(st.sampled_from((0.05, 0.3, 1.0))),
            "max_cat_to_onehot": draw(st.integers(1, 6)),
            "min_data_per_group": draw(st.sampled_from((1, 5, 50))),
            "cat_smooth": draw(st.sampled_from((0.5, 10.0))),
        }
        return Recipe(
            name="hypothesis",
            seed=draw(st.integers(0, 2**31 - 1)),
            n_rows=draw(st.integers(100, 400)),
            numeric=numeric,
            categorical=categorical,
            params=params,
            rounds=rounds,
            early_stopping=early,
            num_iteration=None if early else draw(st.sampled_from((None, max(1, rounds // 2)))),
            score_rows=30,
        )

    return build()


# Hand-written one-split LightGBM models: every (threshold, missing_type, default_left) and categorical
# set, loaded by LightGBM itself, so the routing table is checked against LightGBM beyond what training
# happens to produce (e.g. thresholds strictly inside +-kZeroThreshold).
CRAFTED_THRESHOLDS: tuple[float, ...] = (
    -1e-36,
    0.0,
    1e-36,
    K_ZERO_THRESHOLD,
    -K_ZERO_THRESHOLD,
    0.5,
    -0.5,
    1e300,
    -1.7976931348623157e308,
    5e-324,
)
CRAFTED_CATEGORY_SETS: tuple[tuple[int, ...], ...] = ((0,), (1,), (0, 3, 40), (31, 32, 63, 100))
_MISSING_BITS = {"None": 0, "Zero": 4, "NaN": 8}


def crafted_model_text(
    threshold: float | None, missing_type: str, default_left: bool, categories: Sequence[int] = ()
) -> str:
    decision = _MISSING_BITS[missing_type] | (2 if default_left else 0) | (1 if categories else 0)
    lines = [
        "tree", "version=v4", "num_class=1", "num_tree_per_iteration=1", "label_index=0",
        "max_feature_idx=0", "objective=binary sigmoid:1", "feature_names=f0", "feature_infos=none", "",
        "Tree=0", "num_leaves=2", f"num_cat={1 if categories else 0}", "split_feature=0", "split_gain=1",
        f"threshold={0 if categories else repr(threshold)}", f"decision_type={decision}",
        "left_child=-1", "right_child=-2", "leaf_value=1 2", "leaf_weight=1 1", "leaf_count=1 1",
        "internal_value=0", "internal_weight=1", "internal_count=2",
    ]  # fmt: skip
    if categories:
        words = [0] * ((max(categories) >> 5) + 1)
        for code in categories:
            words[code >> 5] |= 1 << (code & 31)
        lines += [f"cat_boundaries=0 {len(words)}", "cat_threshold=" + " ".join(map(str, words))]
    lines += ["is_linear=0", "shrinkage=1", "", "", "end of trees", ""]
    return "\n".join(lines)


def crafted_boosters() -> list[tuple[str, lgb.Booster]]:
    found = []
    for missing in _MISSING_BITS:
        for default_left in (False, True):
            for threshold in CRAFTED_THRESHOLDS:
                text = crafted_model_text(threshold, missing, default_left)
                found.append((f"<= {threshold!r} {missing} left={default_left}", lgb.Booster(model_str=text)))
            for codes in CRAFTED_CATEGORY_SETS:
                text = crafted_model_text(None, missing, default_left, codes)
                found.append((f"== {codes} {missing} left={default_left}", lgb.Booster(model_str=text)))
    return found


def crafted_probes() -> list[float]:
    values = set(NUMERIC_EDGES) | set(CODE_EDGES) | {-5e-36, 5e-36, -2e-35, 2e-35}
    values |= {float(c) for codes in CRAFTED_CATEGORY_SETS for c in codes} | {2.0, 41.0, 64.0, 99.5, 100.9}
    for threshold in CRAFTED_THRESHOLDS:
        values |= {threshold, math.nextafter(threshold, math.inf), math.nextafter(threshold, -math.inf)}
    return sorted(values, key=lambda v: (math.isnan(v), v))


def crafted_state(booster: lgb.Booster) -> dict[str, Any]:
    return model_state_from_dump(
        booster.dump_model(),
        feature_names=["x"],
        input_features=[{"name": "x", "kind": "numeric"}],
        model_text=booster.model_to_string(),
    )


# Reads one JSON request per line ({"state", "rows"}) and answers one JSON line per request, so a
# property test pays Node's start-up once. Numbers go back through JSON.stringify, which writes the
# shortest round-tripping form: Python reads back the very same doubles.
NDJSON_RUNNER = """
import { createInterface } from 'node:readline';
const { loadModel, scoreBatch } = await import(process.argv[2]);
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  let reply;
  try {
    const request = JSON.parse(line);
    const model = loadModel(request.state);
    const scored = scoreBatch(model, request.rows);
    reply = {
      raw: scored.map((s) => s.rawMargin),
      score: scored.map((s) => s.score),
      credit: scored.map((s) => Object.values(s.contributions).reduce((a, b) => a + b, s.baseValue)),
      contributions: scored.map((s) => s.contributions),
    };
  } catch (error) {
    reply = { error: `${error.name}: ${error.message}` };
  }
  process.stdout.write(JSON.stringify(reply) + '\\n');
}
"""


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the JavaScript scorer parity needs Node 18+")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    if int(version.strip().lstrip("v").split(".")[0]) < 18:
        pytest.skip(f"node {version.strip()} is too old: the JavaScript scorer needs Node 18+")
    return node


class JsScorer:
    """A long-lived `node` process scoring (state, rows) requests with scorers/js/index.mjs."""

    def __init__(self, node: str, script: Path) -> None:
        self._process = subprocess.Popen(
            [node, str(script), JS_INDEX.as_uri()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def score(self, state: dict[str, Any], rows: Sequence[Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        request = json.dumps({"state": state, "rows": list(rows)}, allow_nan=False, ensure_ascii=False)
        self._process.stdin.write(request + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the node scorer exited with {self._process.wait()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
