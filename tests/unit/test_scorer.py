"""LightGBM's routing rules, one at a time, on hand-built trees (leaf value 1 = left, 2 = right).

The parity tests (tests/contract) check the same rules against LightGBM itself; these pin each rule
down with inputs chosen to tell a right implementation from the usual wrong ones.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any

import pytest

from domain.errors import ValidationFailed
from domain.gbm.model_state import UnsupportedModel, content_hash
from domain.gbm.scorer import K_ZERO_THRESHOLD, GbmModel, Score, category_key, load_model

LEFT, RIGHT = 1.0, 2.0


def leaf(value: float) -> dict[str, Any]:
    return {"leaf_value": value}


def split(
    threshold: float | str,
    *,
    feature: int = 0,
    missing: str = "None",
    default_left: bool = True,
    value: float = 0.0,
    left: dict[str, Any] | None = None,
    right: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "split_feature": feature,
        "threshold": threshold,
        "decision_type": "==" if isinstance(threshold, str) else "<=",
        "default_left": default_left,
        "missing_type": missing,
        "internal_value": value,
        "left_child": left or leaf(LEFT),
        "right_child": right or leaf(RIGHT),
    }


def model(
    *roots: dict[str, Any],
    names: tuple[str, ...] = ("x",),
    inputs: list[dict[str, Any]] | None = None,
    sigmoid: float = 1.0,
) -> GbmModel:
    state: dict[str, Any] = {
        "schema_version": 1,
        "objective": f"binary sigmoid:{sigmoid:g}",
        "num_class": 1,
        "num_tree_per_iteration": 1,
        "max_feature_idx": len(names) - 1,
        "feature_names": list(names),
        "trees": [{"tree_index": i, "tree_structure": r} for i, r in enumerate(roots)],
        "link": "sigmoid",
        "sigmoid": sigmoid,
        "input_features": inputs or [{"name": n, "kind": "numeric"} for n in names],
    }
    state["content_hash"] = content_hash(state)
    return load_model(state)


def side(m: GbmModel, x: Any) -> float:
    return m.raw_margin([x])


def test_k_zero_threshold_is_lightgbms_float_literal() -> None:
    assert struct.unpack("f", struct.pack("f", 1e-35))[0] == K_ZERO_THRESHOLD
    assert K_ZERO_THRESHOLD != 1e-35


def test_numeric_split_is_less_or_equal() -> None:
    t = 0.1 + 0.2
    m = model(split(t))
    assert side(m, t) == LEFT
    assert side(m, math.nextafter(t, math.inf)) == RIGHT
    assert side(m, -math.inf) == LEFT
    assert side(m, math.inf) == RIGHT
    assert side(m, "Infinity") == RIGHT
    assert side(m, 1e300) == RIGHT


@pytest.mark.parametrize("default_left", [True, False])
def test_nan_on_a_none_split_reads_as_zero(default_left: bool) -> None:
    assert side(model(split(0.5, default_left=default_left)), math.nan) == LEFT
    assert side(model(split(-0.5, default_left=default_left)), None) == RIGHT
    assert side(model(split(-0.5, default_left=default_left)), "NaN") == RIGHT


def test_zero_missing_type_sends_zero_and_nan_to_the_default_side() -> None:
    m = model(split(5.0, missing="Zero", default_left=False))
    for x in (0.0, -0.0, math.nan, None, 1e-36, K_ZERO_THRESHOLD, -K_ZERO_THRESHOLD):
        assert side(m, x) == RIGHT, x
    for x in (math.nextafter(K_ZERO_THRESHOLD, 1.0), 1e-30, 3.0, -2.0):
        assert side(m, x) == LEFT, x
    m = model(split(-5.0, missing="Zero", default_left=True))
    assert (side(m, 0.0), side(m, math.nan), side(m, 1.0)) == (LEFT, LEFT, RIGHT)


def test_nan_missing_type_sends_nan_to_the_default_side_and_keeps_zero_ordinary() -> None:
    m = model(split(5.0, missing="NaN", default_left=False))
    assert (side(m, math.nan), side(m, 0.0), side(m, 6.0)) == (RIGHT, LEFT, RIGHT)
    m = model(split(-5.0, missing="NaN", default_left=True))
    assert (side(m, None), side(m, 0.0)) == (LEFT, RIGHT)


def test_inputs_within_k_zero_reach_the_trees_as_exact_zero() -> None:
    # LightGBM's dense-row reader drops |x| <= kZeroThreshold; -5e-36 <= -1e-36 but reads as 0.
    m = model(split(-1e-36))
    assert side(m, -5e-36) == RIGHT
    assert side(m, -math.nextafter(K_ZERO_THRESHOLD, 1.0)) == LEFT
    # -kZero is one of LightGBM's own bin bounds: -kZero itself reads as 0, so it goes right.
    at_minus_k = model(split(-K_ZERO_THRESHOLD))
    assert side(at_minus_k, -K_ZERO_THRESHOLD) == RIGHT
    assert side(at_minus_k, -math.nextafter(K_ZERO_THRESHOLD, 1.0)) == LEFT
    assert side(at_minus_k, math.nan) == RIGHT
    at_k = model(split(K_ZERO_THRESHOLD))
    assert side(at_k, K_ZERO_THRESHOLD) == LEFT
    assert side(at_k, math.nextafter(K_ZERO_THRESHOLD, 1.0)) == RIGHT
    assert side(model(split(0.0)), 5e-36) == LEFT


def test_categorical_split_truncates_codes_and_sends_nan_negative_huge_unseen_right() -> None:
    m = model(split("0||3||40"))
    for x in (0.0, 3.0, 40.0, 3.7, -0.5, -0.0, 0.999):
        assert side(m, x) == LEFT, x
    huge = (math.inf, -math.inf, 2.0**31, 2.0**32 + 3, 1e10, -1e10)
    for y in (1.0, 2.0, 39.0, 41.0, 64.0, -1.0, -1.5, math.nan, None, *huge):
        assert side(m, y) == RIGHT, y
    wide = model(split("31||32||63||100"))
    assert [side(wide, float(x)) for x in (31, 32, 63, 100, 30, 33, 64, 101)] == [LEFT] * 4 + [RIGHT] * 4


ONEHOT = [{"name": "c", "kind": "categorical", "encoding": "onehot", "categories": ["a", "b", "true", "3"]}]


def test_one_hot_sets_the_matching_column_and_all_zeros_otherwise() -> None:
    m = model(split(0.5, feature=1), names=("c=a", "c=b", "c=true", "c=3"), inputs=ONEHOT)
    assert m.encode({"c": "b"}) == [0.0, 1.0, 0.0, 0.0]
    assert m.encode({"c": True}) == [0.0, 0.0, 1.0, 0.0]
    assert m.encode({"c": 3}) == m.encode({"c": 3.0}) == [0.0, 0.0, 0.0, 1.0]
    for value in ("zzz", None, "B", 3.5):
        assert m.encode({"c": value}) == [0.0] * 4
    assert m.encode({}) == [0.0] * 4
    assert [m.raw_margin({"c": c}) for c in ("b", "a", "zzz")] == [RIGHT, LEFT, LEFT]


def test_native_uses_the_category_index_and_nan_for_unseen_or_missing() -> None:
    inputs = [{"name": "c", "kind": "categorical", "encoding": "native", "categories": ["x", "y", "z"]}]
    m = model(split("1"), names=("c",), inputs=inputs)
    assert m.encode({"c": "z"}) == [2.0]
    assert math.isnan(m.encode({"c": "w"})[0]) and math.isnan(m.encode({})[0])
    assert m.raw_margin({"c": "y"}) == LEFT
    for value in ("x", "z", "w", None, 1):
        assert m.raw_margin({"c": value}) == RIGHT, value


def test_category_key() -> None:
    assert [category_key(v) for v in ("a", True, False, 3, 3.0, -0.0, 2.5, math.nan, None)] == [
        "a", "true", "false", "3", "3", "0", None, None, None,
    ]  # fmt: skip


def test_numeric_values_and_bad_rows() -> None:
    m = model(split(0.5), names=("x",))
    assert m.encode({"x": True}) == [1.0] and m.encode({"x": False}) == [0.0]
    assert m.encode({"x": 7, "unknown": "ignored"}) == [7.0]
    assert [m.encode({"x": s})[0] for s in ("Infinity", "-Infinity")] == [math.inf, -math.inf]
    with pytest.raises(ValidationFailed, match="x: expected a number") as raised:
        m.encode({"x": "12"})
    assert raised.value.details == [{"field": "x", "message": raised.value.message}]
    with pytest.raises(ValidationFailed, match="outside the float64 range"):
        m.encode({"x": 10**400})
    with pytest.raises(ValidationFailed, match="needs 1 values, got 2"):
        m.encode([1.0, 2.0])
    for bad in ("x", b"x", 5):
        with pytest.raises(ValidationFailed, match="a row must be"):
            m.encode(bad)  # type: ignore[arg-type]


def test_contributions_credit_each_split_to_its_input_and_sum_to_the_margin() -> None:
    inputs: list[dict[str, Any]] = [{"name": "a", "kind": "numeric"}, ONEHOT[0] | {"categories": ["u", "v"]}]
    inner = split(0.5, feature=2, value=0.25, left=leaf(0.125), right=leaf(1.0))
    tree0 = split(1.0, feature=0, value=0.5, left=inner, right=leaf(2.0))
    m = model(tree0, leaf(-0.75), names=("a", "c=u", "c=v"), inputs=inputs, sigmoid=2.0)
    assert m.base_value == 0.5 - 0.75
    s = m.score({"a": 0.0, "c": "v"})
    assert s == Score(
        raw_margin=1.0 - 0.75,
        score=1.0 / (1.0 + math.exp(-2.0 * 0.25)),
        contributions={"a": 0.25 - 0.5, "c": 1.0 - 0.25},
        base_value=-0.25,
    )
    assert m.score({"a": 5.0, "c": "v"}).contributions == {"a": 1.5, "c": 0.0}
    assert m.score_batch([{"a": 0.0, "c": "v"}, [5.0, 0.0, 1.0]]) == [s, m.score({"a": 5.0, "c": "v"})]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.score = 0.0  # type: ignore[misc]


def test_the_sigmoid_saturates_like_c_instead_of_overflowing() -> None:
    m = model(split(0.0, left=leaf(-1e6), right=leaf(1e6)), sigmoid=0.5)
    assert m.score([-1.0]).score == 0.0
    assert m.score([1.0]).score == 1.0


def test_a_single_leaf_tree_adds_its_value_with_no_path() -> None:
    m = model(leaf(0.25), split(0.0))
    assert m.raw_margin([5.0]) == 0.25 + RIGHT
    assert m.num_trees == 2 and m.base_value == 0.25
    assert m.score([5.0]).contributions == {"x": RIGHT - 0.0}


def test_deep_trees_do_not_exhaust_the_recursion_limit() -> None:
    node = leaf(LEFT)
    for depth in range(400):
        node = split(float(depth), left=node, right=leaf(RIGHT))
    m = model(node)
    assert side(m, -1.0) == LEFT
    assert side(m, 1000.0) == RIGHT


def test_load_model_validates() -> None:
    with pytest.raises(UnsupportedModel, match="schema_version 7"):
        load_model({"schema_version": 7, "trees": "a future shape"})
    with pytest.raises(UnsupportedModel, match="lacks required keys"):
        load_model({"trees": []})
