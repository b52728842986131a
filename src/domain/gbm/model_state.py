"""The `modelState` contract: LightGBM's JSON dump, made self-describing, versioned and hashed.

A modelState is what the platform stores and what both reference scorers (this package's `scorer` and
`scorers/js`) read. It is `Booster.dump_model()` (turned into a state by `adapters.gbm.model_dump`)
with these changes:

- `tree_info` is renamed `trees` (entries unchanged);
- `feature_names` holds the real column names (training uses internal names `f0..fN` because real
  names and categories may contain characters LightGBM rejects); `feature_infos` is re-keyed likewise;
- `feature_importances` and `pandas_categorical` are dropped;
- added: `schema_version`, `link`, `sigmoid`, `input_features` (how a raw row becomes the columns of
  `feature_names`) and `content_hash` (sha256 of the canonical JSON of everything else);
- optional, and then `schema_version` is 2: `calibration` (`domain.gbm.calibration`) and
  `reference`, the training distributions drift is measured against (`domain.gbm.reference`).

Only binary models with plain (non-linear) trees are supported; `validate_model_state` says why
anything else is refused instead of letting a scorer produce garbage.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from domain.gbm.calibration import validate_calibration

# Re-exported: callers name the refusal from the contract's module.
from domain.gbm.errors import UnsupportedModel as UnsupportedModel
from domain.gbm.errors import unsupported as unsupported
from domain.gbm.reference import validate_reference

SCHEMA_VERSION: Final = 1
# Version 2 = version 1 plus the optional `calibration` and `reference` blocks: a scorer that knows
# only version 1 refuses such a model instead of scoring it uncalibrated.
SCHEMA_VERSION_WITH_BLOCKS: Final = 2
SUPPORTED_SCHEMA_VERSIONS: Final = frozenset({SCHEMA_VERSION, SCHEMA_VERSION_WITH_BLOCKS})
BLOCK_KEYS: Final = ("calibration", "reference")

NUMERIC: Final = "numeric"
CATEGORICAL: Final = "categorical"
ONEHOT: Final = "onehot"
NATIVE: Final = "native"

# Bounds the bitset a scorer builds per categorical split (2 MiB); trained codes are category indices.
MAX_CATEGORY_CODE: Final = 2**24 - 1
DECISION_TYPES: Final = frozenset({"<=", "=="})
MISSING_TYPES: Final = frozenset({"None", "Zero", "NaN"})

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
_LINEAR_LEAF_KEYS: Final = ("leaf_coeff", "leaf_const", "leaf_features")
_HASH_PATTERN: Final = re.compile(r"sha256:[0-9a-f]{64}")
_CAT_THRESHOLD_PATTERN: Final = re.compile(r"\d+(\|\|\d+)*")


# JavaScript writes an integral number below 1e21 in digits (1e17 as 100000000000000000), beyond it
# with an exponent, as a float: below it, an integral float is hashed as the integer it equals.
_DIGITS_BELOW: Final = 1e21


def _by_value(value: Any) -> Any:
    """JSON numbers by their value, not their Python type: a state that went through JavaScript's
    JSON (the platform stores and sends models from Node) comes back with `1.0` written as `1`, and
    must keep its hash."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < _DIGITS_BELOW else value
    if isinstance(value, dict):
        return {key: _by_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_by_value(item) for item in value]
    return value


def _dumps(body: Any) -> str:
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise unsupported(f"modelState is not plain finite JSON: {exc}") from exc


def canonical_json(state: Mapping[str, Any]) -> str:
    """The byte form the content hash covers: the state without `content_hash`, keys sorted, an
    integral number written as an integer (`1.0` as `1`)."""
    return _dumps(_by_value({key: value for key, value in state.items() if key != "content_hash"}))


def content_hash(state: Mapping[str, Any]) -> str:
    """`sha256:<hex>` of `canonical_json(state)` (UTF-8)."""
    digest = hashlib.sha256(canonical_json(state).encode("utf-8")).hexdigest()
    return f"sha256:{digest}"


def _typed_content_hash(state: Mapping[str, Any]) -> str:
    """The hash before numbers were hashed by value (`1.0` and `1` apart): what models built before
    carry, still accepted."""
    body = _dumps({key: value for key, value in state.items() if key != "content_hash"})
    return f"sha256:{hashlib.sha256(body.encode('utf-8')).hexdigest()}"


def parse_sigmoid(objective: str) -> float:
    """The sigma of a binary objective string such as `binary sigmoid:1`; refuses any other objective."""
    tokens = objective.split()
    if not tokens or tokens[0] != "binary":
        raise unsupported(
            f"objective {objective!r} is not supported: only binary models can be scored", "objective"
        )
    sigmas = [token.split(":", 1)[1] for token in tokens[1:] if token.startswith("sigmoid:")]
    if len(sigmas) != 1:
        raise unsupported(f"objective {objective!r} does not carry exactly one sigmoid:<sigma>", "objective")
    try:
        sigma = float(sigmas[0])
    except ValueError as exc:
        raise unsupported(f"objective {objective!r} has a malformed sigmoid", "objective") from exc
    if not math.isfinite(sigma) or sigma <= 0.0:
        raise unsupported(f"objective {objective!r}: sigmoid must be a positive finite number", "objective")
    return sigma


def validate_model_state(state: Any, *, verify_hash: bool = True) -> None:
    """Raise `UnsupportedModel` unless `state` is a modelState the reference scorers score exactly."""
    if not isinstance(state, Mapping):
        raise unsupported("modelState must be a JSON object")
    # The version first: a newer contract may rename keys, and "unsupported version" is the real cause.
    version = state.get("schema_version")
    if "schema_version" in state and (isinstance(version, bool) or version not in SUPPORTED_SCHEMA_VERSIONS):
        raise unsupported(
            f"modelState schema_version {version!r} is not supported (supported: "
            f"{sorted(SUPPORTED_SCHEMA_VERSIONS)})",
            "schema_version",
        )
    missing = [key for key in _REQUIRED_KEYS if key not in state]
    if missing:
        raise unsupported(f"modelState lacks required keys: {', '.join(missing)}", missing[0])
    objective = state["objective"]
    if not isinstance(objective, str):
        raise unsupported("objective must be a string", "objective")
    sigma = parse_sigmoid(objective)
    if state["link"] != "sigmoid":
        raise unsupported(f"link {state['link']!r} is not supported (only 'sigmoid')", "link")
    if not _is_number(state["sigmoid"]) or float(state["sigmoid"]) != sigma:
        raise unsupported(f"sigmoid {state['sigmoid']!r} disagrees with objective {objective!r}", "sigmoid")
    for key in ("num_class", "num_tree_per_iteration"):
        if state[key] != 1 or isinstance(state[key], bool):
            raise unsupported(f"{key} is {state[key]!r}: only single-output binary models are supported", key)
    if state.get("average_output") is True:
        raise unsupported("average_output models (boosting 'rf') are not supported", "average_output")
    names = state["feature_names"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise unsupported("feature_names must be a list of strings", "feature_names")
    if len(set(names)) != len(names):
        raise unsupported("feature_names has duplicates", "feature_names")
    if state["max_feature_idx"] != len(names) - 1:
        raise unsupported(
            f"max_feature_idx {state['max_feature_idx']!r} disagrees with {len(names)} feature_names",
            "max_feature_idx",
        )
    input_columns(state["input_features"], names)
    _validate_blocks(state)
    trees = state["trees"]
    if not isinstance(trees, list):
        raise unsupported("trees must be a list", "trees")
    for position, tree in enumerate(trees):
        _validate_tree(tree, position, len(names))
    expected = state["content_hash"]
    if not isinstance(expected, str) or not _HASH_PATTERN.fullmatch(expected):
        raise unsupported("content_hash must be 'sha256:' and 64 lowercase hex digits", "content_hash")
    actual = content_hash(state) if verify_hash else expected
    if actual != expected and _typed_content_hash(state) != expected:
        raise unsupported(
            f"content_hash mismatch: the state hashes to {actual}, not {expected} (altered or corrupted)",
            "content_hash",
        )


def _validate_blocks(state: Mapping[str, Any]) -> None:
    carried = [key for key in BLOCK_KEYS if key in state]
    if carried and state["schema_version"] != SCHEMA_VERSION_WITH_BLOCKS:
        raise unsupported(
            f"schema_version {state['schema_version']!r} cannot carry {' or '.join(carried)}: a model "
            f"with them is version {SCHEMA_VERSION_WITH_BLOCKS}",
            "schema_version",
        )
    if "calibration" in state:
        validate_calibration(state["calibration"])
    if "reference" in state:
        validate_reference(state["reference"], state["input_features"])


def attach_blocks(
    state: dict[str, Any],
    *,
    calibration: Mapping[str, Any] | None = None,
    reference: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`state` (a built modelState, taken over) with the blocks given set, version 2 when any is,
    rehashed and validated."""
    for key, block in (("calibration", calibration), ("reference", reference)):
        if block is not None:
            state[key] = dict(block)
    if any(key in state for key in BLOCK_KEYS):
        state["schema_version"] = SCHEMA_VERSION_WITH_BLOCKS
    state["content_hash"] = content_hash(state)
    validate_model_state(state, verify_hash=False)  # just computed from this very state
    return state


def input_columns(input_features: Any, feature_names: Sequence[str]) -> list[list[int]]:
    """For each input feature, the indices of its columns in `feature_names`; checks exact coverage.

    One-hot features own one column per category (in category order); numeric and native ones own the
    column named like the field. Every column must belong to exactly one input feature.
    """
    if not isinstance(input_features, list) or not input_features:
        raise unsupported("input_features must be a non-empty list", "input_features")
    position = {name: index for index, name in enumerate(feature_names)}
    owner: dict[int, str] = {}
    seen: set[str] = set()
    result: list[list[int]] = []
    for spec in input_features:
        name, columns = _columns_of(spec, position)
        if name in seen:
            raise unsupported(f"input feature {name!r} is listed twice", "input_features")
        seen.add(name)
        for column in columns:
            if column in owner:
                raise unsupported(
                    f"column {feature_names[column]!r} is claimed by both {owner[column]!r} and {name!r}",
                    "input_features",
                )
            owner[column] = name
        result.append(columns)
    orphans = [feature_names[index] for index in range(len(feature_names)) if index not in owner]
    if orphans:
        raise unsupported(f"columns not produced by any input feature: {orphans[:5]}", "input_features")
    return result


def _columns_of(spec: Any, position: Mapping[str, int]) -> tuple[str, list[int]]:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise unsupported("each input feature needs a string 'name'", "input_features")
    name: str = spec["name"]
    kind = spec.get("kind")
    if kind == NUMERIC:
        wanted = [name]
    elif kind == CATEGORICAL:
        encoding = spec.get("encoding")
        categories = spec.get("categories")
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise unsupported(
                f"categorical input {name!r} needs 'categories' as a list of strings", "input_features"
            )
        if len(set(categories)) != len(categories):
            raise unsupported(f"categorical input {name!r} has duplicate categories", "input_features")
        if encoding == ONEHOT:
            wanted = [f"{name}={category}" for category in categories]
        elif encoding == NATIVE:
            wanted = [name]
        else:
            raise unsupported(
                f"input {name!r}: encoding {encoding!r} is not 'onehot' or 'native'", "input_features"
            )
    else:
        raise unsupported(
            f"input {name!r}: kind {kind!r} is not 'numeric' or 'categorical'", "input_features"
        )
    absent = [column for column in wanted if column not in position]
    if absent:
        raise unsupported(
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
        raise unsupported(f"{where} needs a tree_structure object", "trees")
    if tree.get("is_linear"):
        raise unsupported(f"{where} is a linear tree: linear_tree models are not supported", "trees")
    stack: list[Any] = [tree["tree_structure"]]
    while stack:
        node = stack.pop()
        if not isinstance(node, Mapping):
            raise unsupported(f"{where} has a node that is not an object", "trees")
        if "split_feature" not in node:
            if any(key in node for key in _LINEAR_LEAF_KEYS):
                raise unsupported(f"{where} has linear leaves: linear_tree models are not supported", "trees")
            if not _is_finite_number(node.get("leaf_value")):
                raise unsupported(f"{where} has a leaf without a finite leaf_value", "trees")
            continue
        _validate_split(node, where, num_features)
        stack.append(node.get("left_child"))
        stack.append(node.get("right_child"))


def _validate_split(node: Mapping[str, Any], where: str, num_features: int) -> None:
    feature = node["split_feature"]
    if not isinstance(feature, int) or isinstance(feature, bool) or not 0 <= feature < num_features:
        raise unsupported(f"{where} splits on feature {feature!r}, outside feature_names", "trees")
    decision = node.get("decision_type")
    if decision not in DECISION_TYPES:
        raise unsupported(f"{where} has decision_type {decision!r} (supported: '<=', '==')", "trees")
    if node.get("missing_type") not in MISSING_TYPES:
        raise unsupported(f"{where} has missing_type {node.get('missing_type')!r}", "trees")
    if not isinstance(node.get("default_left"), bool):
        raise unsupported(f"{where} has a split without a boolean default_left", "trees")
    threshold = node.get("threshold")
    if decision == "<=":
        if not _is_finite_number(threshold):
            raise unsupported(f"{where} has a numeric split without a finite threshold", "trees")
    elif not isinstance(threshold, str) or not _CAT_THRESHOLD_PATTERN.fullmatch(threshold):
        raise unsupported(
            f"{where} has a categorical split whose threshold is not '||'-joined codes", "trees"
        )
    elif max(int(code) for code in threshold.split("||")) > MAX_CATEGORY_CODE:
        raise unsupported(f"{where} has a categorical code above {MAX_CATEGORY_CODE}", "trees")
    if not _is_number(node.get("internal_value", 0.0)):
        raise unsupported(f"{where} has a non-numeric internal_value", "trees")
