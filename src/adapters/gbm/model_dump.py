"""LightGBM's `Booster.dump_model()` and `model_to_string()` turned into a modelState (the contract
itself, its validation and its hash, is `domain.gbm.model_state`)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

from domain.gbm.model_state import (
    CATEGORICAL,
    SCHEMA_VERSION,
    content_hash,
    parse_sigmoid,
    unsupported,
    validate_model_state,
)

# dump_model() writes thresholds through Common::AvoidInf, which clamps them to +-1e300.
_DUMP_THRESHOLD_CLAMP: Final = 1e300
_DROPPED_DUMP_KEYS: Final = frozenset({"tree_info", "feature_importances", "pandas_categorical"})


def model_state_from_dump(
    dump: Mapping[str, Any],
    *,
    feature_names: Sequence[str],
    input_features: Sequence[Mapping[str, Any]],
    model_text: str | None = None,
    seal: bool = True,
) -> dict[str, Any]:
    """Build a validated, hashed modelState from `Booster.dump_model()` (taken over and modified: pass
    a fresh dump).

    `feature_names` are the real names of the trained columns, in training order. `input_features`
    describe the raw fields: `{"name", "kind": "numeric"}` or `{"name", "kind": "categorical",
    "encoding": "onehot"|"native", "categories": [...]}` (categories in code order).

    `seal` False leaves hashing and validating to the caller's `attach_blocks` (a training adds its
    calibration and reference later: hashing twice cost 35 ms of a 100-tree model).

    `model_text` (optional, `Booster.model_to_string()` of the same iterations) restores thresholds
    that the dump clamped to +-1e300; without it, inputs beyond +-1e300 on such a split can route
    differently from LightGBM.
    """
    if "tree_info" not in dump:
        raise unsupported("the LightGBM dump has no tree_info", "tree_info")
    dumped_names = dump.get("feature_names")
    if not isinstance(dumped_names, list) or len(dumped_names) != len(feature_names):
        raise unsupported(
            f"{len(feature_names)} feature names given for a dump of "
            f"{len(dumped_names) if isinstance(dumped_names, list) else 'no'} features",
            "feature_names",
        )
    # The dump is taken over, not copied: a deep copy of a 100-tree dump cost as much as the training.
    state: dict[str, Any] = {key: value for key, value in dump.items() if key not in _DROPPED_DUMP_KEYS}
    state["trees"] = dump["tree_info"]
    state["feature_names"] = [str(name) for name in feature_names]
    infos = state.get("feature_infos")
    if isinstance(infos, dict):
        renamed = dict(zip(dumped_names, feature_names, strict=True))
        state["feature_infos"] = {renamed.get(key, key): value for key, value in infos.items()}
    if model_text is not None:
        _restore_clamped_thresholds(state["trees"], model_text)
    state["schema_version"] = SCHEMA_VERSION
    state["link"] = "sigmoid"
    state["sigmoid"] = parse_sigmoid(str(state.get("objective", "")))
    state["input_features"] = [_normalise_input_feature(spec) for spec in input_features]
    if seal:
        state["content_hash"] = content_hash(state)
        validate_model_state(state, verify_hash=False)  # just computed from this very state
    return state


def _normalise_input_feature(spec: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": spec.get("name"), "kind": spec.get("kind")}
    if spec.get("kind") == CATEGORICAL:
        out["encoding"] = spec.get("encoding")
        categories = spec.get("categories")
        if isinstance(categories, Sequence) and not isinstance(categories, str):
            categories = list(categories)
        out["categories"] = categories
    return out


def _model_text_thresholds(model_text: str) -> dict[int, list[float]]:
    thresholds: dict[int, list[float]] = {}
    tree: int | None = None
    for line in model_text.splitlines():
        if line.startswith("Tree="):
            tree = int(line[5:])
        elif line.startswith("end of trees"):
            break
        elif tree is not None and line.startswith("threshold="):
            thresholds[tree] = [float(token) for token in line[10:].split()]
    return thresholds


def _restore_clamped_thresholds(trees: list[Any], model_text: str) -> None:
    exact = _model_text_thresholds(model_text)
    for tree in trees:
        values = exact.get(tree.get("tree_index"), [])
        for node in _iter_nodes(tree.get("tree_structure")):
            threshold = node.get("threshold")
            if node.get("decision_type") != "<=" or not isinstance(threshold, float):
                continue
            index = node.get("split_index")
            if not isinstance(index, int) or index >= len(values):
                raise unsupported(
                    f"model_text has no threshold for split {index} of tree {tree.get('tree_index')}"
                )
            if abs(threshold) < _DUMP_THRESHOLD_CLAMP:
                # Both print 17 significant digits: any difference means another model's text.
                if values[index] != threshold:
                    raise unsupported("model_text does not describe the same trees as the dump", "model_text")
                continue
            # JSON has no infinity: the nearest finite double routes every finite input the same way.
            node["threshold"] = max(-sys.float_info.max, min(sys.float_info.max, values[index]))


def _iter_nodes(root: Any) -> list[dict[str, Any]]:
    """Every node of a tree, iteratively (deep trees would exhaust Python's recursion limit)."""
    nodes: list[dict[str, Any]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        nodes.append(node)
        if "split_feature" in node:
            stack.append(node.get("left_child"))
            stack.append(node.get("right_child"))
    return nodes
