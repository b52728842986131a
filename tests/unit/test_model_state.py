"""The modelState contract: building it from a LightGBM dump (the adapter), hashing it, and refusing what
is unsupported (the domain)."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from adapters.gbm.model_dump import model_state_from_dump
from domain.errors import ValidationFailed
from domain.gbm.model_state import (
    SUPPORTED_SCHEMA_VERSIONS,
    UnsupportedModel,
    content_hash,
    parse_sigmoid,
    validate_model_state,
)

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas" / "model_state.schema.json").read_text(encoding="utf-8")
)
NAMES = ["age", "region=north", "region=south"]
INPUTS: list[dict[str, Any]] = [
    {"name": "age", "kind": "numeric"},
    {"name": "region", "kind": "categorical", "encoding": "onehot", "categories": ["north", "south"]},
]


def split(
    feature: int, threshold: Any, left: dict[str, Any], right: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    node = {
        "split_index": 0,
        "split_feature": feature,
        "split_gain": 1.5,
        "threshold": threshold,
        "decision_type": "==" if isinstance(threshold, str) else "<=",
        "default_left": True,
        "missing_type": "None",
        "internal_value": 0.0,
        "internal_weight": 10.0,
        "internal_count": 20,
        "left_child": left,
        "right_child": right,
    }
    node.update(extra)
    return node


def leaf(value: float, index: int = 0) -> dict[str, Any]:
    return {"leaf_index": index, "leaf_value": value, "leaf_weight": 3.0, "leaf_count": 7}


def lightgbm_dump() -> dict[str, Any]:
    """The shape Booster.dump_model() returns for a 3-column binary model (internal names f0..f2)."""
    tree0 = split(0, 30.5, leaf(-0.25), split(2, 1.0000000180025095e-35, leaf(0.125, 1), leaf(0.5, 2)))
    tree1 = split(1, 0.5, leaf(-0.0625), leaf(0.0625, 1), missing_type="NaN", default_left=False)
    return {
        "name": "tree",
        "version": "v4",
        "num_class": 1,
        "num_tree_per_iteration": 1,
        "label_index": 0,
        "max_feature_idx": 2,
        "objective": "binary sigmoid:0.5",
        "average_output": False,
        "feature_names": ["f0", "f1", "f2"],
        "monotone_constraints": [],
        "feature_infos": {
            "f0": {"min_value": 18, "max_value": 90, "values": []},
            "f1": {"min_value": 0, "max_value": 1, "values": []},
            "f2": {"min_value": 0, "max_value": 1, "values": []},
        },
        "tree_info": [
            {"tree_index": 0, "num_leaves": 3, "num_cat": 0, "shrinkage": 1, "tree_structure": tree0},
            {"tree_index": 1, "num_leaves": 2, "num_cat": 0, "shrinkage": 0.1, "tree_structure": tree1},
        ],
        "feature_importances": {"f0": 1, "f1": 1, "f2": 1},
        "pandas_categorical": None,
    }


def make_state() -> dict[str, Any]:
    return model_state_from_dump(lightgbm_dump(), feature_names=NAMES, input_features=INPUTS)


def rehashed(state: dict[str, Any]) -> dict[str, Any]:
    state["content_hash"] = content_hash(state)
    return state


def test_the_state_is_the_dump_renamed_and_extended() -> None:
    dump = lightgbm_dump()
    original = copy.deepcopy(dump)
    state = model_state_from_dump(dump, feature_names=NAMES, input_features=INPUTS)
    assert dump == original, "the dump must not be mutated"
    assert state["trees"] == dump["tree_info"]
    for dropped in ("tree_info", "feature_importances", "pandas_categorical"):
        assert dropped not in state
    assert state["feature_names"] == NAMES
    assert list(state["feature_infos"]) == NAMES
    assert state["schema_version"] == 1 and 1 in SUPPORTED_SCHEMA_VERSIONS
    assert state["link"] == "sigmoid"
    assert state["sigmoid"] == 0.5
    assert state["input_features"] == INPUTS
    assert state["objective"] == "binary sigmoid:0.5"
    assert state["content_hash"] == content_hash(state)
    validate_model_state(state)


def test_the_hash_covers_the_canonical_json_without_itself() -> None:
    state = {"b": 1, "a": "é", "c": [1.5, True, None], "content_hash": "ignored"}
    canonical = '{"a":"é","b":1,"c":[1.5,true,null]}'
    assert content_hash(state) == "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert content_hash(dict(reversed(list(state.items())))) == content_hash(state)


def test_the_hash_survives_a_json_round_trip_and_catches_a_one_ulp_change() -> None:
    state = make_state()
    validate_model_state(json.loads(json.dumps(state)))
    tampered = copy.deepcopy(state)
    node = tampered["trees"][0]["tree_structure"]["left_child"]
    node["leaf_value"] = math.nextafter(node["leaf_value"], 1.0)
    with pytest.raises(UnsupportedModel, match="content_hash mismatch"):
        validate_model_state(tampered)


@pytest.mark.parametrize(
    ("objective", "sigma"),
    [("binary sigmoid:1", 1.0), ("binary sigmoid:0.25", 0.25), ("binary  sigmoid:2.5 extra:1", 2.5)],
)
def test_parse_sigmoid(objective: str, sigma: float) -> None:
    assert parse_sigmoid(objective) == sigma


@pytest.mark.parametrize(
    "objective",
    ["regression", "cross_entropy", "multiclass num_class:3", "binary", "binary sigmoid:x",
     "binary sigmoid:0", "binary sigmoid:-1", "binary sigmoid:inf", ""],
)  # fmt: skip
def test_parse_sigmoid_refuses(objective: str) -> None:
    with pytest.raises(UnsupportedModel):
        parse_sigmoid(objective)


def mutation(change: Callable[[dict[str, Any]], Any], rehash: bool = True) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        state = make_state()
        change(state)
        return rehashed(state) if rehash else state

    return build


def root(state: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = state["trees"][0]["tree_structure"]
    return node


REFUSALS: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "future version": (mutation(lambda s: s.update(schema_version=3)), "schema_version 3 is not supported"),
    "version as string": (mutation(lambda s: s.update(schema_version="1")), "schema_version '1'"),
    "version as bool": (mutation(lambda s: s.update(schema_version=True)), "schema_version True"),
    "regression": (mutation(lambda s: s.update(objective="regression")), "only binary"),
    "sigma disagrees": (mutation(lambda s: s.update(sigmoid=1.0)), "disagrees with objective"),
    "other link": (mutation(lambda s: s.update(link="identity")), "link 'identity'"),
    "multiclass": (mutation(lambda s: s.update(num_class=3)), "num_class is 3"),
    "trees per iteration": (mutation(lambda s: s.update(num_tree_per_iteration=2)), "num_tree_per_iteration"),
    "random forest": (mutation(lambda s: s.update(average_output=True)), "average_output"),
    "wrong hash": (mutation(lambda s: s.update(content_hash="sha256:" + "0" * 64), rehash=False), "mismatch"),
    "malformed hash": (mutation(lambda s: s.update(content_hash="md5:00"), rehash=False), "64 lowercase hex"),
    "linear leaves": (
        mutation(lambda s: root(s)["left_child"].update(leaf_const=0.1, leaf_coeff=[0.5], leaf_features=[0])),
        "linear_tree",
    ),
    "linear tree": (mutation(lambda s: s["trees"][1].update(is_linear=True)), "linear tree"),
    "names vs max idx": (mutation(lambda s: s.update(max_feature_idx=5)), "max_feature_idx 5"),
    "duplicate names": (
        mutation(lambda s: s.update(feature_names=["age", "age", "region=south"])),
        "duplicates",
    ),
    "orphan column": (
        mutation(lambda s: s["input_features"][1].update(categories=["north"])),
        "not produced by any input feature",
    ),
    "absent column": (
        mutation(lambda s: s["input_features"].append({"name": "income", "kind": "numeric"})),
        "missing from feature_names",
    ),
    "duplicate input": (mutation(lambda s: s["input_features"].append(dict(INPUTS[0]))), "listed twice"),
    "unknown kind": (mutation(lambda s: s["input_features"][0].update(kind="text")), "kind 'text'"),
    "unknown encoding": (
        mutation(lambda s: s["input_features"][1].update(encoding="hash")),
        "encoding 'hash'",
    ),
    "non-string categories": (
        mutation(lambda s: s["input_features"][1].update(categories=[1, 2])),
        "list of strings",
    ),
    "no input features": (mutation(lambda s: s.update(input_features=[])), "non-empty"),
    "feature out of range": (mutation(lambda s: root(s).update(split_feature=3)), "outside feature_names"),
    "strict less": (mutation(lambda s: root(s).update(decision_type="<")), "decision_type '<'"),
    "missing type": (mutation(lambda s: root(s).update(missing_type="Null")), "missing_type 'Null'"),
    "default_left": (mutation(lambda s: root(s).update(default_left=1)), "boolean default_left"),
    "string threshold": (mutation(lambda s: root(s).update(threshold="30.5")), "finite threshold"),
    "bad categories": (
        mutation(lambda s: root(s).update(decision_type="==", threshold="1|2")),
        "'||'-joined codes",
    ),
    "huge category code": (
        mutation(lambda s: root(s).update(decision_type="==", threshold="1||16777216")),
        "categorical code above 16777215",
    ),
    "leaf without value": (mutation(lambda s: root(s)["left_child"].pop("leaf_value")), "finite leaf_value"),
    "NaN leaf": (
        mutation(lambda s: root(s)["left_child"].update(leaf_value=math.nan), rehash=False),
        "finite",
    ),
    "trees not a list": (mutation(lambda s: s.update(trees={"0": {}})), "trees must be a list"),
    "node not an object": (mutation(lambda s: root(s).update(left_child=[1])), "not an object"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_unsupported_states_are_refused_with_a_clear_message(case: str) -> None:
    build, message = REFUSALS[case]
    with pytest.raises(UnsupportedModel, match=message) as raised:
        validate_model_state(build())
    assert isinstance(raised.value, ValidationFailed)
    assert raised.value.code == "VALIDATION_ERROR"
    assert raised.value.details and "field" in raised.value.details[0]


@pytest.mark.parametrize(
    "key",
    ["schema_version", "objective", "num_class", "num_tree_per_iteration", "max_feature_idx", "feature_names",
     "trees", "link", "sigmoid", "input_features", "content_hash"],
)  # fmt: skip
def test_each_required_key_is_required(key: str) -> None:
    state = make_state()
    del state[key]
    with pytest.raises(UnsupportedModel, match=f"lacks required keys: {key}"):
        validate_model_state(state)


@pytest.mark.parametrize("value", [None, [], "model", 3])
def test_a_non_object_is_refused(value: Any) -> None:
    with pytest.raises(UnsupportedModel, match="JSON object"):
        validate_model_state(value)


def test_building_refuses_mismatched_names_and_non_binary_dumps() -> None:
    with pytest.raises(UnsupportedModel, match="2 feature names given for a dump of 3"):
        model_state_from_dump(lightgbm_dump(), feature_names=NAMES[:2], input_features=INPUTS)
    regression = {**lightgbm_dump(), "objective": "regression"}
    with pytest.raises(UnsupportedModel, match="only binary"):
        model_state_from_dump(regression, feature_names=NAMES, input_features=INPUTS)
    no_trees = {key: value for key, value in lightgbm_dump().items() if key != "tree_info"}
    with pytest.raises(UnsupportedModel, match="no tree_info"):
        model_state_from_dump(no_trees, feature_names=NAMES, input_features=INPUTS)


def test_model_text_restores_thresholds_the_dump_clamped_to_1e300() -> None:
    dump = lightgbm_dump()
    dump["tree_info"][0]["tree_structure"]["threshold"] = -1e300  # AvoidInf of -DBL_MAX
    dump["tree_info"][0]["tree_structure"]["right_child"]["split_index"] = 1
    dump["tree_info"][1]["tree_structure"]["threshold"] = 1e300  # AvoidInf of +inf
    text = "\n".join(
        [
            "tree",
            "version=v4",
            "Tree=0",
            "threshold=-1.7976931348623157e+308 1.0000000180025095e-35",
            "Tree=1",
            "threshold=inf",
            "end of trees",
            "threshold=999",
        ]
    )
    state = model_state_from_dump(dump, feature_names=NAMES, input_features=INPUTS, model_text=text)
    first = state["trees"][0]["tree_structure"]
    assert first["threshold"] == -1.7976931348623157e308
    assert first["right_child"]["threshold"] == 1.0000000180025095e-35  # unclamped: kept as dumped
    assert state["trees"][1]["tree_structure"]["threshold"] == 1.7976931348623157e308  # JSON has no inf
    validate_model_state(state)


def test_produced_states_conform_to_the_published_json_schema() -> None:
    validator = jsonschema_rs.Draft202012Validator(SCHEMA)
    state = make_state()
    assert validator.is_valid(state), [str(error) for error in validator.iter_errors(state)]
    native = lightgbm_dump()
    native["tree_info"][1]["tree_structure"] = split(2, "0||3", leaf(-0.5), leaf(0.5, 1), default_left=False)
    inputs: list[dict[str, Any]] = [
        {"name": "age", "kind": "numeric"},
        {"name": "plan", "kind": "numeric"},
        {"name": "region", "kind": "categorical", "encoding": "native", "categories": ["n", "s", "e", "w"]},
    ]
    state = model_state_from_dump(native, feature_names=["age", "plan", "region"], input_features=inputs)
    assert validator.is_valid(state)


@pytest.mark.parametrize(
    "case", ["future version", "regression", "multiclass", "linear leaves", "strict less", "malformed hash"]
)
def test_the_json_schema_rejects_unsupported_states(case: str) -> None:
    validator = jsonschema_rs.Draft202012Validator(SCHEMA)
    assert not validator.is_valid(REFUSALS[case][0]())


def test_model_text_of_another_model_is_refused() -> None:
    dump = lightgbm_dump()
    dump["tree_info"][0]["tree_structure"]["right_child"]["split_index"] = 1
    text = "Tree=0\nthreshold=30.5 0.25\nTree=1\nthreshold=0.5\nend of trees\n"
    with pytest.raises(UnsupportedModel, match="not describe the same trees"):
        model_state_from_dump(dump, feature_names=NAMES, input_features=INPUTS, model_text=text)
    with pytest.raises(UnsupportedModel, match="no threshold for split 0 of tree 1"):
        truncated = "Tree=0\nthreshold=30.5 1.0000000180025095e-35\nend of trees\n"
        model_state_from_dump(dump, feature_names=NAMES, input_features=INPUTS, model_text=truncated)
