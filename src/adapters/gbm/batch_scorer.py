"""A modelState scored over a polars frame at numpy speed, with exactly the rules of the pure-Python
reference scorer (`domain.gbm.scorer`, whose docstring lists them).

All trees are flattened into one node table, and every (row, tree) pair of a chunk of rows walks
down it together, one level per step, so the Python loop runs once per tree level rather than once
per node visited. The leaves reached are then summed tree by tree from 0.0, the order the reference
scorer (and LightGBM) sums them in, so the raw margins are bit-identical, not merely close.
"""

from __future__ import annotations

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
# (row, tree) pairs walked at once: bounds the working arrays (a few int64/float64 per pair) to tens
# of MB whatever the rows.
_PAIRS_PER_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class BatchScores:
    raw_margin: np.ndarray
    probability: np.ndarray  # LightGBM's uncalibrated 1 / (1 + exp(-sigmoid * raw_margin))
    score: np.ndarray  # the probability, calibrated when the model carries `calibration`


@dataclass(frozen=True)
class _Nodes:
    """Every inner node of every tree; a child >= 0 is an inner node, < 0 is ~leaf index."""

    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    kind: np.ndarray
    default_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_value: np.ndarray
    # A categorical node's codes as a bitmap: bits[cat_offset : cat_offset + cat_size].
    cat_offset: np.ndarray
    cat_size: np.ndarray
    cat_bits: np.ndarray


class BatchScorer:
    """A validated, compiled modelState. Immutable once built; picklable."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        validate_model_state(state)
        self.sigmoid = float(state["sigmoid"])
        self.calibration: Mapping[str, Any] | None = state.get("calibration")
        self.feature_count = len(state["feature_names"])
        columns = input_columns(state["input_features"], state["feature_names"])
        self._inputs = [
            (dict(spec), cols) for spec, cols in zip(state["input_features"], columns, strict=True)
        ]
        self._nodes = _flatten([tree["tree_structure"] for tree in state["trees"]])

    @property
    def num_trees(self) -> int:
        return len(self._nodes.roots)

    def encode(self, frame: pl.DataFrame) -> np.ndarray:
        """The float64 matrix, in `feature_names` order, that LightGBM would be given for the frame's
        rows (a column absent from the frame is missing, as an absent key of a row)."""
        matrix = np.zeros((frame.height, self.feature_count), dtype=np.float64)
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
        x = np.ascontiguousarray(matrix, dtype=np.float64)
        # The predictor drops |x| <= kZeroThreshold: they are exactly 0 (and -0.0 becomes 0.0).
        x = np.where(np.abs(x) <= K_ZERO_THRESHOLD, 0.0, x)
        margins = np.zeros(len(x), dtype=np.float64)
        trees = max(self.num_trees, 1)
        step = max(1, _PAIRS_PER_CHUNK // trees)
        for start in range(0, len(x), step):
            margins[start : start + step] = self._chunk_margins(x[start : start + step])
            progress(min(1.0, (start + step) / len(x)), "scoring rows")
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

    def _chunk_margins(self, x: np.ndarray) -> np.ndarray:
        nodes = self._nodes
        rows, trees = len(x), len(nodes.roots)
        if trees == 0:
            return np.zeros(rows)
        flat = x.ravel()
        width = x.shape[1]
        node = np.tile(nodes.roots, rows)
        row_base = np.repeat(np.arange(rows, dtype=np.int64) * width, trees)
        active = np.flatnonzero(node >= 0)
        while active.size:
            at = node[active]
            child = np.where(
                _goes_left(nodes, at, flat[row_base[active] + nodes.feature[at]]),
                nodes.left[at],
                nodes.right[at],
            )
            node[active] = child
            active = active[child >= 0]
        leaves = nodes.leaf_value[~node].reshape(rows, trees)
        margins = np.zeros(rows, dtype=np.float64)
        for column in leaves.T:  # tree by tree: the reference scorer's order of additions
            margins += column
        return margins


def _exp_or_infinity(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:  # then 1 / (1 + exp) is 0, as LightGBM's sigmoid in C
        return math.inf


def _exp(values: np.ndarray) -> np.ndarray:
    """`math.exp` over an array: the C library's exp that the reference scorer calls, so scores agree
    to the last bit (numpy's vectorised exp may round the last bit otherwise); about 0.1 s a million."""
    return np.fromiter(map(_exp_or_infinity, values.tolist()), dtype=np.float64, count=len(values))


def _goes_left(nodes: _Nodes, at: np.ndarray, v: np.ndarray) -> np.ndarray:
    kind, threshold, default_left = nodes.kind[at], nodes.threshold[at], nodes.default_left[at]
    with np.errstate(invalid="ignore"):
        go = v <= threshold
    missing = np.isnan(v)
    if missing.any():
        # NaN is read as 0 for "None"; it is missing (the default side) for "NaN" and "Zero".
        go = np.where(missing, np.where(kind == _NUM_NONE, threshold >= 0.0, default_left), go)
    go = np.where((kind == _NUM_ZERO) & (v == 0.0), default_left, go)
    categorical = np.flatnonzero(kind == _CATEGORY)
    if categorical.size:
        go[categorical] = _in_category_set(nodes, at[categorical], v[categorical])
    result: np.ndarray = go
    return result


def _in_category_set(nodes: _Nodes, at: np.ndarray, v: np.ndarray) -> np.ndarray:
    """NaN and codes outside (-1, 2^31) go right; the rest, truncated toward zero, go left iff listed."""
    with np.errstate(invalid="ignore"):
        valid = (v > -1.0) & (v < _INT_LIMIT)
    code = np.where(valid, v, 0.0).astype(np.int64)
    valid &= code < nodes.cat_size[at]
    listed: np.ndarray = valid & nodes.cat_bits[nodes.cat_offset[at] + np.where(valid, code, 0)]
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


def _flatten(roots: Sequence[Mapping[str, Any]]) -> _Nodes:
    feature: list[int] = []
    threshold: list[float] = []
    kind: list[int] = []
    default_left: list[bool] = []
    left: list[int] = []
    right: list[int] = []
    leaf_value: list[float] = []
    cat_offset: list[int] = []
    cat_size: list[int] = []
    bits: list[np.ndarray] = []
    bits_used = 0

    def add(node: Mapping[str, Any]) -> int:
        nonlocal bits_used
        if "split_feature" not in node:
            leaf_value.append(float(node["leaf_value"]))
            return ~(len(leaf_value) - 1)
        feature.append(int(node["split_feature"]))
        default_left.append(bool(node["default_left"]))
        left.append(0)
        right.append(0)
        if node["decision_type"] == "==":
            codes = np.array([int(code) for code in str(node["threshold"]).split("||")], dtype=np.int64)
            bitmap = np.zeros(int(codes.max()) + 1, dtype=bool)
            bitmap[codes] = True
            kind.append(_CATEGORY)
            threshold.append(np.nan)
            cat_offset.append(bits_used)
            cat_size.append(len(bitmap))
            bits.append(bitmap)
            bits_used += len(bitmap)
        else:
            kind.append(_KINDS[node["missing_type"]])
            threshold.append(float(node["threshold"]))
            cat_offset.append(0)
            cat_size.append(0)
        return len(feature) - 1

    root_refs = []
    for root in roots:
        # Iterative: deep trees would exceed Python's recursion limit.
        ref = add(root)
        root_refs.append(ref)
        pending = [(root, ref)] if ref >= 0 else []
        while pending:
            node, index = pending.pop()
            for side, children in (("left_child", left), ("right_child", right)):
                child = add(node[side])
                children[index] = child
                if child >= 0:
                    pending.append((node[side], child))
    return _Nodes(
        roots=np.array(root_refs, dtype=np.int64),
        feature=np.array(feature, dtype=np.int64),
        threshold=np.array(threshold, dtype=np.float64),
        kind=np.array(kind, dtype=np.int8),
        default_left=np.array(default_left, dtype=bool),
        left=np.array(left, dtype=np.int64),
        right=np.array(right, dtype=np.int64),
        leaf_value=np.array(leaf_value, dtype=np.float64),
        cat_offset=np.array(cat_offset, dtype=np.int64),
        cat_size=np.array(cat_size, dtype=np.int64),
        cat_bits=np.concatenate(bits) if bits else np.zeros(1, dtype=bool),
    )
