"""Pure-Python reference scorer of a modelState: LightGBM's own routing, bit for bit.

It reproduces `Booster.predict(raw_score=True)` on a float64 matrix exactly (same sums in the same
order), so it can vouch for the JavaScript scorer and for the metrics the service reports. The rules,
from LightGBM 4.x (`Tree::NumericalDecision`, `Tree::CategoricalDecision`, `RowFunctionFromDenseMatric`):

- the predictor drops inputs with |x| <= kZeroThreshold (float32(1e-35)), so they are exactly 0;
- numeric split `<=`: a NaN is read as 0 unless the split's missing_type is "NaN"; then a zero
  (missing_type "Zero") or a NaN (missing_type "NaN") goes to the default side (`default_left`);
  anything else goes left when x <= threshold;
- categorical split `==`: NaN goes right; otherwise the value is truncated toward zero to a C int (out
  of int range gives INT_MIN); a negative code goes right; the rest go left iff the code is one of the
  `||`-joined codes of the threshold (so -0.5 reads as code 0, unseen codes go right);
- score = 1 / (1 + exp(-sigma * raw_margin)), then the model's `calibration` when it carries one
  (`domain.gbm.calibration`; the raw margin and the contributions are never calibrated).

Contributions are path (Saabas) attributions: at each split the change from the node's expected value
(`internal_value`) to the child's is credited to the input feature owning the split column, so
`base_value + sum(contributions) == raw_margin` up to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from domain.errors import ValidationFailed, field_error
from domain.gbm.calibration import calibrate
from domain.gbm.model_state import (
    CATEGORICAL,
    NUMERIC,
    ONEHOT,
    input_columns,
    validate_model_state,
)
from domain.gbm.values import as_number as _as_number
from domain.gbm.values import category_key as category_key  # re-exported for the encoders

# LightGBM declares `const double kZeroThreshold = 1e-35f;`: the float literal widened to double.
K_ZERO_THRESHOLD: Final = 1.0000000180025095e-35

_NUM_NONE: Final = 0
_NUM_ZERO: Final = 1
_NUM_NAN: Final = 2
_CATEGORY: Final = 3
_KINDS: Final = {"None": _NUM_NONE, "Zero": _NUM_ZERO, "NaN": _NUM_NAN}

# static_cast<int> keeps codes in (-1, 2^31) non-negative; everything else reads as negative.
_INT_LIMIT: Final = 2147483648.0


@dataclass(frozen=True, slots=True)
class Score:
    """One row's result. `contributions` maps every input feature (in model order) to its credit."""

    raw_margin: float
    score: float
    contributions: dict[str, float]
    base_value: float


@dataclass(frozen=True, slots=True)
class _Tree:
    """A tree in flat arrays. Child index >= 0 is an inner node, < 0 is ~leaf position."""

    root: int
    feature: list[int]
    threshold: list[float]
    kind: list[int]
    default_left: list[bool]
    categories: list[frozenset[int]]
    left: list[int]
    right: list[int]
    value: list[float]
    leaf_value: list[float]


@dataclass(frozen=True, slots=True)
class _Input:
    name: str
    kind: str
    encoding: str | None
    columns: tuple[int, ...]
    codes: Mapping[str, int]


class GbmModel:
    """A loaded, validated modelState. Immutable; safe to share across threads."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        validate_model_state(state)
        names: list[str] = list(state["feature_names"])
        self.feature_names: tuple[str, ...] = tuple(names)
        self.sigmoid: float = float(state["sigmoid"])
        self.content_hash: str = state["content_hash"]
        self.schema_version: int = state["schema_version"]
        self.calibration: Mapping[str, Any] | None = state.get("calibration")
        self.reference: Mapping[str, Any] | None = state.get("reference")
        columns = input_columns(state["input_features"], names)
        self._inputs = tuple(
            _compile_input(spec, cols) for spec, cols in zip(state["input_features"], columns, strict=True)
        )
        self.input_names: tuple[str, ...] = tuple(spec.name for spec in self._inputs)
        owner = [0] * len(names)
        for position, cols in enumerate(columns):
            for column in cols:
                owner[column] = position
        self._owner = owner
        self._trees = tuple(_compile_tree(tree["tree_structure"]) for tree in state["trees"])
        base = 0.0
        for tree in self._trees:
            base += tree.value[tree.root] if tree.root >= 0 else tree.leaf_value[~tree.root]
        self.base_value = base

    @property
    def num_trees(self) -> int:
        return len(self._trees)

    def encode(self, row: Mapping[str, Any] | Sequence[Any]) -> list[float]:
        """The float64 vector, in `feature_names` order, that LightGBM would be given for `row`.

        A Mapping is keyed by input feature name (absent key = missing; unknown keys are ignored):
        numbers, booleans (1.0/0.0), None or 'NaN'/'Infinity'/'-Infinity' for numeric inputs; the
        category for categorical ones. A Sequence is taken as already encoded.
        """
        if isinstance(row, Mapping):
            return self._encode_mapping(row)
        if isinstance(row, str | bytes) or not isinstance(row, Sequence):
            raise ValidationFailed(
                "a row must be an object keyed by feature name or an array in feature_names order",
                [field_error("row", "wrong type")],
            )
        if len(row) != len(self.feature_names):
            message = f"an encoded row needs {len(self.feature_names)} values, got {len(row)}"
            raise ValidationFailed(message, [field_error("row", message)])
        return [_as_number(value, name) for value, name in zip(row, self.feature_names, strict=True)]

    def _encode_mapping(self, row: Mapping[str, Any]) -> list[float]:
        x = [0.0] * len(self.feature_names)
        for spec in self._inputs:
            value = row.get(spec.name)
            if spec.kind == NUMERIC:
                x[spec.columns[0]] = _as_number(value, spec.name)
                continue
            key = None if value is None else category_key(value)
            code = None if key is None else spec.codes.get(key)
            if spec.encoding == ONEHOT:
                if code is not None:
                    x[spec.columns[code]] = 1.0
            else:
                x[spec.columns[0]] = math.nan if code is None else float(code)
        return x

    def raw_margin(self, row: Mapping[str, Any] | Sequence[Any]) -> float:
        """Sum of the leaves reached: equals `Booster.predict(raw_score=True)`."""
        return self._walk(self.encode(row), None)

    def score(self, row: Mapping[str, Any] | Sequence[Any]) -> Score:
        credit = [0.0] * len(self._inputs)
        margin = self._walk(self.encode(row), credit)
        return Score(
            raw_margin=margin,
            score=self.calibrated(margin),
            contributions=dict(zip(self.input_names, credit, strict=True)),
            base_value=self.base_value,
        )

    def score_batch(self, rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> list[Score]:
        return [self.score(row) for row in rows]

    def probability(self, raw_margin: float) -> float:
        """LightGBM's `1 / (1 + exp(-sigma * x))`; exp overflowing to infinity gives 0 as in C."""
        try:
            return 1.0 / (1.0 + math.exp(-self.sigmoid * raw_margin))
        except OverflowError:
            return 0.0

    def calibrated(self, raw_margin: float) -> float:
        """The row's `score`: LightGBM's probability, through the model's calibration when it has one."""
        probability = self.probability(raw_margin)
        if self.calibration is None:
            return probability
        return calibrate(self.calibration, probability, raw_margin)

    def _walk(self, encoded: list[float], credit: list[float] | None) -> float:
        kzero = K_ZERO_THRESHOLD
        xs = [0.0 if -kzero <= v <= kzero else v for v in encoded]
        owner = self._owner
        total = 0.0
        for tree in self._trees:
            node = tree.root
            feature, threshold, kind = tree.feature, tree.threshold, tree.kind
            left, right, value, leaves = tree.left, tree.right, tree.value, tree.leaf_value
            while node >= 0:
                v = xs[feature[node]]
                k = kind[node]
                if k == _CATEGORY:
                    go_left = -1.0 < v < _INT_LIMIT and int(v) in tree.categories[node]
                elif v != v:  # NaN: read as 0 for "None"; missing for "NaN", and for "Zero" that 0 is missing
                    go_left = threshold[node] >= 0.0 if k == _NUM_NONE else tree.default_left[node]
                elif k == _NUM_ZERO and -kzero <= v <= kzero:
                    go_left = tree.default_left[node]
                else:
                    go_left = v <= threshold[node]
                child = left[node] if go_left else right[node]
                if credit is not None:
                    reached = value[child] if child >= 0 else leaves[~child]
                    credit[owner[feature[node]]] += reached - value[node]
                node = child
            total += leaves[~node]
        return total


def load_model(state: Mapping[str, Any]) -> GbmModel:
    """Validate `state` (raising `UnsupportedModel`) and compile it for scoring."""
    return GbmModel(state)


def _compile_input(spec: Mapping[str, Any], columns: list[int]) -> _Input:
    kind = spec["kind"]
    encoding = spec.get("encoding") if kind == CATEGORICAL else None
    categories: list[str] = list(spec.get("categories") or []) if kind == CATEGORICAL else []
    return _Input(
        name=spec["name"],
        kind=kind,
        encoding=encoding,
        columns=tuple(columns),
        codes={category: code for code, category in enumerate(categories)},
    )


def _compile_tree(root: Mapping[str, Any]) -> _Tree:
    tree = _Tree(
        root=0,
        feature=[],
        threshold=[],
        kind=[],
        default_left=[],
        categories=[],
        left=[],
        right=[],
        value=[],
        leaf_value=[],
    )

    def add(node: Mapping[str, Any]) -> int:
        if "split_feature" not in node:
            tree.leaf_value.append(float(node["leaf_value"]))
            return ~(len(tree.leaf_value) - 1)
        index = len(tree.feature)
        tree.feature.append(int(node["split_feature"]))
        tree.default_left.append(bool(node["default_left"]))
        tree.value.append(float(node.get("internal_value", 0.0)))
        tree.left.append(0)
        tree.right.append(0)
        if node["decision_type"] == "==":
            tree.kind.append(_CATEGORY)
            tree.threshold.append(math.nan)
            tree.categories.append(frozenset(int(code) for code in str(node["threshold"]).split("||")))
        else:
            tree.kind.append(_KINDS[node["missing_type"]])
            tree.threshold.append(float(node["threshold"]))
            tree.categories.append(frozenset())
        return index

    # Iterative pre-order: deep trees would exceed Python's recursion limit.
    root_ref = add(root)
    pending: list[tuple[Mapping[str, Any], int]] = [(root, root_ref)] if root_ref >= 0 else []
    while pending:
        node, index = pending.pop()
        for side, child in (("left_child", tree.left), ("right_child", tree.right)):
            child_node = node[side]
            ref = add(child_node)
            child[index] = ref
            if ref >= 0:
                pending.append((child_node, ref))
    if root_ref < 0:
        return _Tree(root_ref, [], [], [], [], [], [], [], [], tree.leaf_value)
    return tree
