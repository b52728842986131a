"""A modelState scored over a polars frame at numpy speed, with exactly the rules of the pure-Python
reference scorer (`domain.gbm.scorer`, whose docstring lists them).

Each tree routes all rows at once, level by level: a node splits the set of rows that reached it in
one vectorised comparison on its feature's column (with the node's own constants: no per-row lookup
of node attributes), down to the leaves. The leaves reached are then added tree by tree from 0.0,
the order the reference scorer (and LightGBM) sums them in, so the raw margins are bit-identical,
not merely close.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import polars as pl

from domain.errors import ValidationFailed, column_error
from domain.gbm.calibration import ISOTONIC, PLATT
from domain.gbm.model_state import CATEGORICAL, ONEHOT, input_columns, validate_model_state
from domain.gbm.scorer import K_ZERO_THRESHOLD, category_key
from domain.progress import ProgressReporter, no_progress

_NUM_NONE: Final = 0
_NUM_ZERO: Final = 1
_NUM_NAN: Final = 2
_CATEGORY: Final = 3
_KINDS: Final = {"None": _NUM_NONE, "Zero": _NUM_ZERO, "NaN": _NUM_NAN}
# static_cast<int> keeps codes in (-1, 2^31) non-negative; everything else reads as negative.
_INT_LIMIT: Final = 2147483648.0
_NON_FINITE: Final = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


@dataclass(frozen=True)
class BatchScores:
    raw_margin: np.ndarray
    probability: np.ndarray  # LightGBM's uncalibrated 1 / (1 + exp(-sigmoid * raw_margin))
    score: np.ndarray  # the probability, calibrated when the model carries `calibration`


@dataclass(frozen=True)
class _Tree:
    """One tree's inner nodes as lists; a child >= 0 is an inner node, < 0 is ~leaf index."""

    root: int
    feature: list[int]
    threshold: list[float]
    kind: list[int]
    default_left: list[bool]
    # A categorical node's codes as a bitmap (index = code); None for a numeric node.
    categories: list[np.ndarray | None]
    left: list[int]
    right: list[int]
    leaf_value: list[float]


class BatchScorer:
    """A validated, compiled modelState. Immutable once built; picklable."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        # The shape that scoring relies on is checked here; the hash is the request's check
        # (domain/drift/spec.py, before any job exists), and recomputing it in the worker cost as
        # much again: the canonical JSON of every tree (28 ms at 100 trees of 31 leaves).
        validate_model_state(state, verify_hash=False)
        self.sigmoid = float(state["sigmoid"])
        self.calibration: Mapping[str, Any] | None = state.get("calibration")
        self.feature_count = len(state["feature_names"])
        columns = input_columns(state["input_features"], state["feature_names"])
        self._inputs = [
            (dict(spec), cols) for spec, cols in zip(state["input_features"], columns, strict=True)
        ]
        self._trees = tuple(_compile_tree(tree["tree_structure"]) for tree in state["trees"])

    @property
    def num_trees(self) -> int:
        return len(self._trees)

    def encode(self, frame: pl.DataFrame) -> np.ndarray:
        """The float64 matrix, in `feature_names` order, that LightGBM would be given for the frame's
        rows (a column absent from the frame is missing, as an absent key of a row)."""
        matrix = np.zeros((frame.height, self.feature_count), dtype=np.float64, order="F")
        for spec, cols in self._inputs:
            name = spec["name"]
            if spec["kind"] != CATEGORICAL:
                matrix[:, cols[0]] = (
                    numeric_values(frame.get_column(name)) if name in frame.columns else np.nan
                )
                continue
            codes = (
                category_codes(frame.get_column(name), spec["categories"])
                if name in frame.columns
                else np.full(frame.height, np.nan)
            )
            if spec.get("encoding") == ONEHOT:
                present = np.flatnonzero(~np.isnan(codes))
                matrix[present, np.asarray(cols)[codes[present].astype(np.int64)]] = 1.0
            else:
                matrix[:, cols[0]] = codes
        return matrix

    def raw_margins(self, matrix: np.ndarray, progress: ProgressReporter = no_progress) -> np.ndarray:
        """Sum of the leaves reached per row of an encoded matrix: `Booster.predict(raw_score=True)`."""
        # Column-major: a node reads one feature's column. A copy: the caller's matrix is left as is.
        columns = np.array(matrix, dtype=np.float64, order="F", copy=True)
        # The predictor drops |x| <= kZeroThreshold: they are exactly 0 (and -0.0 becomes 0.0).
        columns[np.abs(columns) <= K_ZERO_THRESHOLD] = 0.0
        # A split of missing_type "None" reads NaN as 0.
        nan_as_zero = columns.copy(order="F")
        nan_as_zero[np.isnan(nan_as_zero)] = 0.0
        margins = np.zeros(len(columns), dtype=np.float64)
        reached = np.empty(len(columns), dtype=np.float64)
        for done, tree in enumerate(self._trees, 1):
            _route(tree, columns, nan_as_zero, reached)
            margins += reached  # tree by tree: the reference scorer's order of additions
            if done % 10 == 0 or done == len(self._trees):
                progress(done / len(self._trees), "scoring rows")
        return margins

    def score_frame(self, frame: pl.DataFrame, progress: ProgressReporter = no_progress) -> BatchScores:
        margin = self.raw_margins(self.encode(frame), progress)
        probability = 1.0 / (1.0 + _exp(-self.sigmoid * margin))
        return BatchScores(margin, probability, self.calibrated(probability, margin))

    def calibrated(self, probability: np.ndarray, margin: np.ndarray) -> np.ndarray:
        """formats.md's calibration, the very expression of `domain.gbm.calibration`, over arrays."""
        block = self.calibration
        if block is None:
            return probability
        if block["method"] == PLATT:
            platt: np.ndarray = 1.0 / (1.0 + _exp(-(float(block["a"]) * margin + float(block["b"]))))
            return platt
        if block["method"] != ISOTONIC:  # validate_model_state refuses it first; a guard, not a rule
            raise ValidationFailed(f"unknown calibration method {block['method']!r}")
        return isotonic(
            np.asarray(block["x"], dtype=np.float64), np.asarray(block["y"], dtype=np.float64), probability
        )


def _exp_or_infinity(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:  # then 1 / (1 + exp) is 0, as LightGBM's sigmoid in C
        return math.inf


def _exp(values: np.ndarray) -> np.ndarray:
    """`math.exp` over an array: the C library's exp that the reference scorer calls, so scores agree
    to the last bit (numpy's vectorised exp may round the last bit otherwise); about 0.1 s a million."""
    return np.fromiter(map(_exp_or_infinity, values.tolist()), dtype=np.float64, count=len(values))


def _route(tree: _Tree, columns: np.ndarray, nan_as_zero: np.ndarray, reached: np.ndarray) -> None:
    """Set `reached` to the value of the leaf each row reaches, splitting the rows node by node, one
    level after the other."""
    if tree.root < 0:
        reached[:] = tree.leaf_value[~tree.root]
        return
    level = [(tree.root, np.arange(len(columns)))]
    while level:
        following = []
        for node, rows in level:
            go = _goes_left(tree, node, columns, nan_as_zero, rows)
            for child, picked in ((tree.left[node], rows[go]), (tree.right[node], rows[~go])):
                if not picked.size:
                    continue
                if child < 0:
                    reached[picked] = tree.leaf_value[~child]
                else:
                    following.append((child, picked))
        level = following


def _goes_left(
    tree: _Tree, node: int, columns: np.ndarray, nan_as_zero: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """The routing rules of `domain.gbm.scorer`, for one node over the rows that reached it."""
    feature, threshold, kind = tree.feature[node], tree.threshold[node], tree.kind[node]
    if kind == _NUM_NONE:  # NaN is read as 0
        none: np.ndarray = nan_as_zero[rows, feature] <= threshold
        return none
    v = columns[rows, feature]
    with np.errstate(invalid="ignore"):
        if kind == _CATEGORY:
            return _in_category_set(tree.categories[node], v)
        left = tree.default_left[node]
        # NaN is missing: ~(v > t) sends it left, v <= t right. "Zero" makes 0 missing too.
        go: np.ndarray = ~(v > threshold) if left else v <= threshold
        if kind == _NUM_ZERO:
            go = go | (v == 0.0) if left else go & (v != 0.0)
        return go


def _in_category_set(bitmap: np.ndarray | None, v: np.ndarray) -> np.ndarray:
    """NaN and codes outside (-1, 2^31) go right; the rest, truncated toward zero, go left iff listed."""
    assert bitmap is not None
    valid = (v > -1.0) & (v < _INT_LIMIT)
    code = np.where(valid, v, 0.0).astype(np.int64)
    valid &= code < len(bitmap)
    listed: np.ndarray = valid & bitmap[np.where(valid, code, 0)]
    return listed


def isotonic(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """p <= x[0] -> y[0]; p >= x[-1] -> y[-1]; else the segment of the largest x[i] <= p, interpolated
    as y[i] + (p - x[i]) * ((y[i+1] - y[i]) / (x[i+1] - x[i])), clipped to [0, 1]."""
    if len(x) == 1:
        flat: np.ndarray = np.clip(np.full(p.shape, y[0]), 0.0, 1.0)
        return flat
    i = np.clip(np.searchsorted(x, p, side="right") - 1, 0, len(x) - 2)
    q = y[i] + (p - x[i]) * ((y[i + 1] - y[i]) / (x[i + 1] - x[i]))
    q = np.where(p <= x[0], y[0], np.where(p >= x[-1], y[-1], q))
    clipped: np.ndarray = np.clip(q, 0.0, 1.0)
    return clipped


def numeric_values(column: pl.Series) -> np.ndarray:
    """A numeric input as float64: null -> NaN, booleans 1/0, and in a text column only the strings
    JSON stands in for non-finite numbers with ('NaN', 'Infinity', '-Infinity')."""
    if column.dtype == pl.Boolean or column.dtype.is_numeric():
        return column.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64, copy=False)
    if column.dtype in (pl.String, pl.Categorical) or isinstance(column.dtype, pl.Enum):
        text = column.cast(pl.String)
        unknown = text.drop_nulls().filter(~text.drop_nulls().is_in(list(_NON_FINITE)))
        if unknown.len() == 0:
            return (
                text.replace_strict(
                    list(_NON_FINITE), list(_NON_FINITE.values()), default=None, return_dtype=pl.Float64
                )
                .fill_null(np.nan)
                .to_numpy()
            )
    raise ValidationFailed(
        f"column '{column.name}' must hold numbers for the model, got {column.dtype}",
        [column_error(column.name, f"the model reads it as numeric; got {column.dtype}")],
    )


def category_codes(column: pl.Series, categories: Sequence[str]) -> np.ndarray:
    """Each value's index in `categories` by `category_key` (3 and 3.0 are "3", True is "true"), as
    float64; null and values whose key is not recorded are NaN."""
    if column.dtype == pl.Categorical or isinstance(column.dtype, pl.Enum):
        column = column.cast(pl.String)
    code = {key: float(i) for i, key in enumerate(categories)}
    old: list[Any] = []
    new: list[float] = []
    for value in column.drop_nulls().unique().to_list():
        key = category_key(value)
        if key is not None and key in code:
            old.append(value)
            new.append(code[key])
    if not old:
        return np.full(column.len(), np.nan)
    codes = column.replace_strict(old, new, default=None, return_dtype=pl.Float64)
    return codes.fill_null(np.nan).to_numpy().astype(np.float64, copy=False)


def _compile_tree(root: Mapping[str, Any]) -> _Tree:
    tree = _Tree(0, [], [], [], [], [], [], [], [])

    def add(node: Mapping[str, Any]) -> int:
        if "split_feature" not in node:
            tree.leaf_value.append(float(node["leaf_value"]))
            return ~(len(tree.leaf_value) - 1)
        tree.feature.append(int(node["split_feature"]))
        tree.default_left.append(bool(node["default_left"]))
        tree.left.append(0)
        tree.right.append(0)
        if node["decision_type"] == "==":
            codes = np.array([int(code) for code in str(node["threshold"]).split("||")], dtype=np.int64)
            bitmap = np.zeros(int(codes.max()) + 1, dtype=bool)
            bitmap[codes] = True
            tree.kind.append(_CATEGORY)
            tree.threshold.append(math.nan)
            tree.categories.append(bitmap)
        else:
            tree.kind.append(_KINDS[node["missing_type"]])
            tree.threshold.append(float(node["threshold"]))
            tree.categories.append(None)
        return len(tree.feature) - 1

    # Iterative: deep trees would exceed Python's recursion limit.
    root_ref = add(root)
    pending = [(root, root_ref)] if root_ref >= 0 else []
    while pending:
        node, index = pending.pop()
        for side, children in (("left_child", tree.left), ("right_child", tree.right)):
            child = add(node[side])
            children[index] = child
            if child >= 0:
                pending.append((node[side], child))
    return dataclasses.replace(tree, root=root_ref)
