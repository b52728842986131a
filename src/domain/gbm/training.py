"""The GBM training command, its outcome, and the rules that need no ML library."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from domain.data import ColumnKind
from domain.errors import InsufficientData, ValidationFailed, field_error

MIN_TRAINING_ROWS = 10
MAX_FEATURES = 2000

# The contract's camelCase parameter names and LightGBM's own, with LightGBM's defaults where the
# contract does not say otherwise (the seed is fixed so that training is reproducible).
LIGHTGBM_PARAMS: Mapping[str, tuple[str, Any]] = {
    "numIterations": ("num_iterations", 100),
    "learningRate": ("learning_rate", 0.1),
    "numLeaves": ("num_leaves", 31),
    "maxDepth": ("max_depth", -1),
    "minDataInLeaf": ("min_data_in_leaf", 20),
    "minSumHessianInLeaf": ("min_sum_hessian_in_leaf", 1e-3),
    "featureFraction": ("feature_fraction", 1.0),
    "baggingFraction": ("bagging_fraction", 1.0),
    "baggingFreq": ("bagging_freq", 0),
    "lambdaL1": ("lambda_l1", 0.0),
    "lambdaL2": ("lambda_l2", 0.0),
    "minGainToSplit": ("min_gain_to_split", 0.0),
    "maxBin": ("max_bin", 255),
    "isUnbalance": ("is_unbalance", False),
    "scalePosWeight": ("scale_pos_weight", 1.0),
    "sigmoid": ("sigmoid", 1.0),
    "zeroAsMissing": ("zero_as_missing", False),
    "useMissing": ("use_missing", True),
    "maxCatThreshold": ("max_cat_threshold", 32),
    "catSmooth": ("cat_smooth", 10.0),
    "catL2": ("cat_l2", 10.0),
    "minDataPerGroup": ("min_data_per_group", 100),
    "seed": ("seed", 42),
}


def lightgbm_params(given: Mapping[str, Any]) -> dict[str, Any]:
    """All parameters under LightGBM's names: the defaults, overridden by what the caller gave."""
    unknown = sorted(set(given) - set(LIGHTGBM_PARAMS))
    if unknown:
        raise ValidationFailed(
            f"unknown parameter(s): {', '.join(unknown)}",
            [field_error(f"params.{name}", "not a supported LightGBM parameter") for name in unknown],
        )
    params = {native: default for native, default in LIGHTGBM_PARAMS.values()}
    for name, value in given.items():
        if value is not None:
            params[LIGHTGBM_PARAMS[name][0]] = value
    return params


class CategoricalEncoding(StrEnum):
    ONEHOT = "onehot"
    NATIVE = "native"


@dataclass(frozen=True)
class GbmTrainingSpec:
    label: str
    features: tuple[str, ...] | None = None
    id_field: str | None = "id"
    categorical_features: tuple[str, ...] | None = None
    categorical_encoding: CategoricalEncoding = CategoricalEncoding.ONEHOT
    max_categories: int = 50
    params: Mapping[str, Any] = field(default_factory=lambda: lightgbm_params({}))
    validation_fraction: float = 0.2
    early_stopping_rounds: int | None = None
    include_parity_fixture: bool = False

    @property
    def seed(self) -> int:
        return int(self.params.get("seed", 42))


@dataclass(frozen=True)
class FeaturePlan:
    """Which input columns feed the model, and how."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


def plan_features(spec: GbmTrainingSpec, schema: Mapping[str, ColumnKind]) -> FeaturePlan:
    """Resolve the feature list against the data's columns; every problem names its field."""
    problems: list[dict[str, Any]] = []
    if spec.label not in schema:
        problems.append(field_error("label", f"'{spec.label}' is not a column of the data"))
    if spec.features is not None:
        features = list(dict.fromkeys(spec.features))
        for name in features:
            if name not in schema:
                problems.append(field_error("features", f"'{name}' is not a column of the data"))
            elif name == spec.label:
                problems.append(field_error("features", f"'{name}' is the label and cannot be a feature"))
    else:
        features = [name for name in schema if name not in (spec.label, spec.id_field)]
    categorical_given = set(spec.categorical_features or ())
    for name in sorted(categorical_given - set(features)):
        problems.append(field_error("categoricalFeatures", f"'{name}' is not one of the features"))
    numeric: list[str] = []
    categorical: list[str] = []
    for name in features:
        kind = schema.get(name)
        if kind is None or name == spec.label:
            continue
        if kind is ColumnKind.TEMPORAL:
            problems.append(field_error(name, "timestamps are not supported as features; send a number"))
        elif name in categorical_given or (
            spec.categorical_features is None and kind is ColumnKind.CATEGORICAL
        ):
            categorical.append(name)
        elif kind is ColumnKind.CATEGORICAL:
            problems.append(
                field_error(
                    name, "holds text but is not listed in categoricalFeatures; send numbers or list it"
                )
            )
        else:
            numeric.append(name)
    if problems:
        raise ValidationFailed(problems[0]["message"] if len(problems) == 1 else "invalid features", problems)
    if not numeric and not categorical:
        raise ValidationFailed("no feature left to train on", [field_error("features", "empty")])
    if len(numeric) + len(categorical) > MAX_FEATURES:
        raise ValidationFailed(
            f"too many features (at most {MAX_FEATURES})", [field_error("features", "too many")]
        )
    return FeaturePlan(numeric=tuple(numeric), categorical=tuple(categorical))


def check_class_balance(positives: int, negatives: int, validation_fraction: float) -> None:
    rows = positives + negatives
    if rows < MIN_TRAINING_ROWS:
        raise InsufficientData(
            f"{rows} labelled rows; at least {MIN_TRAINING_ROWS} are needed",
            [field_error("data", f"{rows} rows")],
        )
    if positives == 0 or negatives == 0:
        raise InsufficientData(
            "the label has a single class; both 0 and 1 are needed",
            [field_error("label", f"{positives} positive and {negatives} negative rows")],
        )
    if validation_fraction > 0 and min(positives, negatives) < 2:
        raise InsufficientData(
            "a stratified validation split needs at least 2 rows of each class; "
            "send more rows or set validationFraction to 0",
            [field_error("label", f"{positives} positive and {negatives} negative rows")],
        )


@dataclass(frozen=True)
class GbmMetrics:
    auc: float | None
    logloss: float
    accuracy: float
    precision: float
    recall: float
    training_samples: int
    validation_samples: int
    positive_rate: float
    best_iteration: int
    num_trees: int
    evaluated_on: str


@dataclass(frozen=True)
class FeatureImportance:
    field: str
    importance: float
    selected: bool


def normalise_importance(gains: Mapping[str, float]) -> tuple[FeatureImportance, ...]:
    """Gain per input field as shares summing to 1 (all zero when the model never split)."""
    total = sum(gains.values())
    ranked = sorted(gains.items(), key=lambda item: (-item[1], item[0]))
    return tuple(
        FeatureImportance(field=name, importance=(gain / total if total > 0 else 0.0), selected=gain > 0)
        for name, gain in ranked
    )


@dataclass(frozen=True)
class GbmTrainingOutcome:
    model_state: Mapping[str, Any]
    metrics: GbmMetrics
    feature_importance: Sequence[FeatureImportance]
    durations_ms: Mapping[str, float]
    library_version: str
    warnings: Sequence[str] = ()
    parity_fixture: Mapping[str, Any] | None = None
