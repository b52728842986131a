"""The `modelState` contract: LightGBM's JSON dump, made self-describing, versioned and hashed.

A modelState is what the platform stores and what both reference scorers (this package's `scorer` and
`scorers/js`) read. It is `Booster.dump_model()` with these changes:

- `tree_info` is renamed `trees` (entries unchanged);
- `feature_names` holds the real column names (training uses internal names `f0..fN` because real
  names and categories may contain characters LightGBM rejects); `feature_infos` is re-keyed likewise;
- `feature_importances` and `pandas_categorical` are dropped;
- added: `schema_version`, `link`, `sigmoid`, `input_features` (how a raw row becomes the columns of
  `feature_names`) and `content_hash` (sha256 of the canonical JSON of everything else).

Only binary models with plain (non-linear) trees are supported; `validate_model_state` says why
anything else is refused instead of letting a scorer produce garbage.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

from domain.errors import ValidationFailed, field_error

SCHEMA_VERSION: Final = 1
SUPPORTED_SCHEMA_VERSIONS: Final = frozenset({SCHEMA_VERSION})

NUMERIC: Final = "numeric"
CATEGORICAL: Final = "categorical"
ONEHOT: Final = "onehot"
NATIVE: Final = "native"

# Bounds the bitset a scorer builds per categorical split (2 MiB); trained codes are category indices.
MAX_CATEGORY_CODE: Final = 2**24 - 1
DECISION_TYPES: Final = frozenset({"<=", "=="})
MISSING_TYPES: Final = frozenset({"None", "Zero", "NaN"})

# dump_model() writes thresholds through Common::AvoidInf, which clamps them to +-1e300.
_DUMP_THRESHOLD_CLAMP: Final = 1e300

_REQUIRED_KEYS: Final = (
    "schema_version",
    "objective",
    "num_class",
    "num_tree_per_iteration",
    "max_feature_idx",
    "feature_names",
    "trees",
    "link",
    "sigmoid",
    "input_features",
    "content_hash",
)
_DROPPED_DUMP_KEYS: Final = frozenset({"tree_info", "feature_importances", "pandas_categorical"})
_LINEAR_LEAF_KEYS: Final = ("leaf_coeff", "leaf_const", "leaf_features")
_HASH_PATTERN: Final = re.compile(r"sha256:[0-9a-f]{64}")
_CAT_THRESHOLD_PATTERN: Final = re.compile(r"\d+(\|\|\d+)*")


class UnsupportedModel(ValidationFailed):
    """A modelState the reference scorers cannot score faithfully (version, objective, shape, hash)."""


def _fail(message: str, field: str = "modelState") -> UnsupportedModel:
    return UnsupportedModel(message, [field_error(field, message)])


def canonical_json(state: Mapping[str, Any]) -> str:
    """The byte form the content hash covers: the state without `content_hash`, keys sorted."""
    body = {key: value for key, value in state.items() if key != "content_hash"}
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _fail(f"modelState is not plain finite JSON: {exc}") from exc


def content_hash(state: Mapping[str, Any]) -> str:
    """`sha256:<hex>` of `canonical_json(state)` (UTF-8)."""
    digest = hashlib.sha256(canonical_json(state).encode("utf-8")).hexdigest()
    return f"sha256:{digest}"


def parse_sigmoid(objective: str) -> float:
    """The sigma of a binary objective string such as `binary sigmoid:1`; refuses any other objective."""
    tokens = objective.split()
    if not tokens or tokens[0] != "binary":
        raise _fail(
            f"objective {objective!r} is not supported: only binary models can be scored", "objective"
        )
    sigmas = [token.split(":", 1)[1] for token in tokens[1:] if token.startswith("sigmoid:")]
    if len(sigmas) != 1:
        raise _fail(f"objective {objective!r} does not carry exactly one sigmoid:<sigma>", "objective")
    try:
        sigma = float(sigmas[0])
    except ValueError as exc:
        raise _fail(f"objective {objective!r} has a malformed sigmoid", "objective") from exc
    if not math.isfinite(sigma) or sigma <= 0.0:
        raise _fail(f"objective {objective!r}: sigmoid must be a positive finite number", "objective")
    return sigma


def model_state_from_dump(
    dump: Mapping[str, Any],
    *,
    feature_names: Sequence[str],
    input_features: Sequence[Mapping[str, Any]],
    model_text: str | None = None,
) -> dict[str, Any]:
    """Build a validated, hashed modelState from `Booster.dump_model()` (taken over and modified: pass
    a fresh dump).

    `feature_names` are the real names of the trained columns, in training order. `input_features`
    describe the raw fields: `{"name", "kind": "numeric"}` or `{"name", "kind": "categorical",
    "encoding": "onehot"|"native", "categories": [...]}` (categories in code order).

    `model_text` (optional, `Booster.model_to_string()` of the same iterations) restores thresholds
    that the dump clamped to +-1e300; without it, inputs beyond +-1e300 on such a split can route
    differently from LightGBM.
    """
    if "tree_info" not in dump:
        raise _fail("the LightGBM dump has no tree_info", "tree_info")
    dumped_names = dump.get("feature_names")
    if not isinstance(dumped_names, list) or len(dumped_names) != len(feature_names):
        raise _fail(
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
                raise _fail(f"model_text has no threshold for split {index} of tree {tree.get('tree_index')}")
            if abs(threshold) < _DUMP_THRESHOLD_CLAMP:
                # Both print 17 significant digits: any difference means another model's text.
                if values[index] != threshold:
                    raise _fail("model_text does not describe the same trees as the dump", "model_text")
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


def validate_model_state(state: Any, *, verify_hash: bool = True) -> None:
    """Raise `UnsupportedModel` unless `state` is a modelState the reference scorers score exactly."""
    if not isinstance(state, Mapping):
        raise _fail("modelState must be a JSON object")
    # The version first: a newer contract may rename keys, and "unsupported version" is the real cause.
    version = state.get("schema_version")
    if "schema_version" in state and (isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS):
        raise _fail(
            f"modelState schema_version {version!r} is not supported (supported: "
            f"{sorted(SUPPORTED_SCHEMA_VERSIONS)})",
            "schema_version",
        )
    missing = [key for key in _REQUIRED_KEYS if key not in state]
    if missing:
        raise _fail(f"modelState lacks required keys: {', '.join(missing)}", missing[0])
    objective = state["objective"]
    if not isinstance(objective, str):
        raise _fail("objective must be a string", "objective")
    sigma = parse_sigmoid(objective)
    if state["link"] != "sigmoid":
        raise _fail(f"link {state['link']!r} is not supported (only 'sigmoid')", "link")
    if not _is_number(state["sigmoid"]) or float(state["sigmoid"]) != sigma:
        raise _fail(f"sigmoid {state['sigmoid']!r} disagrees with objective {objective!r}", "sigmoid")
    for key in ("num_class", "num_tree_per_iteration"):
        if state[key] != 1 or isinstance(state[key], bool):
            raise _fail(f"{key} is {state[key]!r}: only single-output binary models are supported", key)
    if state.get("average_output") is True:
        raise _fail("average_output models (boosting 'rf') are not supported", "average_output")
    names = state["feature_names"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise _fail("feature_names must be a list of strings", "feature_names")
    if len(set(names)) != len(names):
        raise _fail("feature_names has duplicates", "feature_names")
    if state["max_feature_idx"] != len(names) - 1:
        raise _fail(
            f"max_feature_idx {state['max_feature_idx']!r} disagrees with {len(names)} feature_names",
            "max_feature_idx",
        )
    input_columns(state["input_features"], names)
    trees = state["trees"]
    if not isinstance(trees, list):
        raise _fail("trees must be a list", "trees")
    for position, tree in enumerate(trees):
        _validate_tree(tree, position, len(names))
    expected = state["content_hash"]
    if not isinstance(expected, str) or not _HASH_PATTERN.fullmatch(expected):
        raise _fail("content_hash must be 'sha256:' and 64 lowercase hex digits", "content_hash")
    actual = content_hash(state) if verify_hash else expected
    if actual != expected:
        raise _fail(
            f"content_hash mismatch: the state hashes to {actual}, not {expected} (altered or corrupted)",
            "content_hash",
        )


def input_columns(input_features: Any, feature_names: Sequence[str]) -> list[list[int]]:
    """For each input feature, the indices of its columns in `feature_names`; checks exact coverage.

    One-hot features own one column per category (in category order); numeric and native ones own the
    column named like the field. Every column must belong to exactly one input feature.
    """
    if not isinstance(input_features, list) or not input_features:
        raise _fail("input_features must be a non-empty list", "input_features")
    position = {name: index for index, name in enumerate(feature_names)}
    owner: dict[int, str] = {}
    seen: set[str] = set()
    result: list[list[int]] = []
    for spec in input_features:
        name, columns = _columns_of(spec, position)
        if name in seen:
            raise _fail(f"input feature {name!r} is listed twice", "input_features")
        seen.add(name)
        for column in columns:
            if column in owner:
                raise _fail(
                    f"column {feature_names[column]!r} is claimed by both {owner[column]!r} and {name!r}",
                    "input_features",
                )
            owner[column] = name
        result.append(columns)
    orphans = [feature_names[index] for index in range(len(feature_names)) if index not in owner]
    if orphans:
        raise _fail(f"columns not produced by any input feature: {orphans[:5]}", "input_features")
    return result


def _columns_of(spec: Any, position: Mapping[str, int]) -> tuple[str, list[int]]:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise _fail("each input feature needs a string 'name'", "input_features")
    name: str = spec["name"]
    kind = spec.get("kind")
    if kind == NUMERIC:
        wanted = [name]
    elif kind == CATEGORICAL:
        encoding = spec.get("encoding")
        categories = spec.get("categories")
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise _fail(
                f"categorical input {name!r} needs 'categories' as a list of strings", "input_features"
            )
        if len(set(categories)) != len(categories):
            raise _fail(f"categorical input {name!r} has duplicate categories", "input_features")
        if encoding == ONEHOT:
            wanted = [f"{name}={category}" for category in categories]
        elif encoding == NATIVE:
            wanted = [name]
        else:
            raise _fail(
                f"input {name!r}: encoding {encoding!r} is not 'onehot' or 'native'", "input_features"
            )
    else:
        raise _fail(f"input {name!r}: kind {kind!r} is not 'numeric' or 'categorical'", "input_features")
    absent = [column for column in wanted if column not in position]
    if absent:
        raise _fail(
            f"input {name!r} expects columns missing from feature_names: {absent[:5]}", "input_features"
        )
    return name, [position[column] for column in wanted]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _validate_tree(tree: Any, position: int, num_features: int) -> None:
    where = f"trees[{position}]"
    if not isinstance(tree, Mapping) or not isinstance(tree.get("tree_structure"), Mapping):
        raise _fail(f"{where} needs a tree_structure object", "trees")
    if tree.get("is_linear"):
        raise _fail(f"{where} is a linear tree: linear_tree models are not supported", "trees")
    stack: list[Any] = [tree["tree_structure"]]
    while stack:
        node = stack.pop()
        if not isinstance(node, Mapping):
            raise _fail(f"{where} has a node that is not an object", "trees")
        if "split_feature" not in node:
            if any(key in node for key in _LINEAR_LEAF_KEYS):
                raise _fail(f"{where} has linear leaves: linear_tree models are not supported", "trees")
            if not _is_finite_number(node.get("leaf_value")):
                raise _fail(f"{where} has a leaf without a finite leaf_value", "trees")
            continue
        _validate_split(node, where, num_features)
        stack.append(node.get("left_child"))
        stack.append(node.get("right_child"))


def _validate_split(node: Mapping[str, Any], where: str, num_features: int) -> None:
    feature = node["split_feature"]
    if not isinstance(feature, int) or isinstance(feature, bool) or not 0 <= feature < num_features:
        raise _fail(f"{where} splits on feature {feature!r}, outside feature_names", "trees")
    decision = node.get("decision_type")
    if decision not in DECISION_TYPES:
        raise _fail(f"{where} has decision_type {decision!r} (supported: '<=', '==')", "trees")
    if node.get("missing_type") not in MISSING_TYPES:
        raise _fail(f"{where} has missing_type {node.get('missing_type')!r}", "trees")
    if not isinstance(node.get("default_left"), bool):
        raise _fail(f"{where} has a split without a boolean default_left", "trees")
    threshold = node.get("threshold")
    if decision == "<=":
        if not _is_finite_number(threshold):
            raise _fail(f"{where} has a numeric split without a finite threshold", "trees")
    elif not isinstance(threshold, str) or not _CAT_THRESHOLD_PATTERN.fullmatch(threshold):
        raise _fail(f"{where} has a categorical split whose threshold is not '||'-joined codes", "trees")
    elif max(int(code) for code in threshold.split("||")) > MAX_CATEGORY_CODE:
        raise _fail(f"{where} has a categorical code above {MAX_CATEGORY_CODE}", "trees")
    if not _is_number(node.get("internal_value", 0.0)):
        raise _fail(f"{where} has a non-numeric internal_value", "trees")
