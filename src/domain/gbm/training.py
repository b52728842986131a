"""The GBM training command, its outcome, and the rules that need no ML library."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from domain.data import ColumnKind
from domain.errors import InsufficientData, ValidationFailed, column_error, field_error
from domain.specs import bound_problems, bounded

MIN_TRAINING_ROWS = 10
MAX_FEATURES = 2000
# Counts of rows (per leaf, per category group): past any table this worker reads (ML_WORKER_MAX_ROWS
# is 5,000,000 by default), and under LightGBM's C int, which a larger value overflows (a 500 before).
MAX_ROW_COUNT = 100_000_000
_BAG_MARGIN = 1e-9
# LightGBM estimates a leaf's row count from its hessian sum and fails inside ("left_count > 0")
# when a split's side holds hessians that round to nothing: with `min_sum_hessian_in_leaf` below
# ~1e-13 (0 included), or positives weighted 1e9 times the negatives (or 1e-9), on saturated leaves
# of small data. Measured over 12 datasets x sigmoid 1e-300..1e300: none failed within these bounds.
MIN_SUM_HESSIAN = 1e-12
MAX_POS_WEIGHT_RATIO = 1e6


@dataclass(frozen=True)
class GbmParams:
    """LightGBM's training parameters, each named as LightGBM names it, with LightGBM's defaults except
    the seed, which is fixed so that training is reproducible."""

    num_iterations: int = bounded(100, minimum=1, maximum=10000)
    learning_rate: float = bounded(0.1, exclusive_minimum=0, maximum=1)
    num_leaves: int = bounded(31, minimum=2, maximum=4096)
    max_depth: int = bounded(-1, minimum=-1, maximum=64)
    min_data_in_leaf: int = bounded(20, minimum=1, maximum=MAX_ROW_COUNT)
    min_sum_hessian_in_leaf: float = bounded(1e-3, minimum=MIN_SUM_HESSIAN)
    feature_fraction: float = bounded(1.0, exclusive_minimum=0, maximum=1)
    bagging_fraction: float = bounded(1.0, exclusive_minimum=0, maximum=1)
    bagging_freq: int = bounded(0, minimum=0, maximum=10000)
    lambda_l1: float = bounded(0.0, minimum=0)
    lambda_l2: float = bounded(0.0, minimum=0)
    min_gain_to_split: float = bounded(0.0, minimum=0)
    max_bin: int = bounded(255, minimum=2, maximum=65535)
    is_unbalance: bool = False
    scale_pos_weight: float = bounded(1.0, minimum=1 / MAX_POS_WEIGHT_RATIO, maximum=MAX_POS_WEIGHT_RATIO)
    sigmoid: float = bounded(1.0, exclusive_minimum=0)
    zero_as_missing: bool = False
    use_missing: bool = True
    # At most the categories a field keeps (`max_categories` <= 1000).
    max_cat_threshold: int = bounded(32, minimum=1, maximum=1000)
    cat_smooth: float = bounded(10.0, minimum=0)
    cat_l2: float = bounded(10.0, minimum=0)
    min_data_per_group: int = bounded(100, minimum=1, maximum=MAX_ROW_COUNT)
    # The contract's bound: LightGBM takes a C int.
    seed: int = bounded(42, minimum=0, maximum=2147483647)


class CategoricalEncoding(StrEnum):
    ONEHOT = "onehot"
    NATIVE = "native"


class Calibration(StrEnum):
    NONE = "none"
    ISOTONIC = "isotonic"
    PLATT = "platt"


# Folds of `cv_folds` (0 = none); fewer than 3 estimate nothing a validation split does not.
MIN_CV_FOLDS = 3
MAX_CV_FOLDS = 10
# Folds that cross-fit a calibrator when there is no validation split and `cv_folds` is 0.
DEFAULT_CALIBRATION_FOLDS = 3
# Held-out rows a calibrator needs at least (of both classes): fewer fit noise.
MIN_CALIBRATION_ROWS = 20


@dataclass(frozen=True)
class GbmTrainingSpec:
    label: str
    features: tuple[str, ...] | None = None
    id_field: str | None = "id"
    categorical_features: tuple[str, ...] | None = None
    categorical_encoding: CategoricalEncoding = CategoricalEncoding.ONEHOT
    max_categories: int = bounded(50, minimum=1, maximum=1000)
    params: GbmParams = field(default_factory=GbmParams)
    validation_fraction: float = bounded(0.2, minimum=0, maximum=0.5)
    early_stopping_rounds: int | None = bounded(None, minimum=1, maximum=10000)
    include_parity_fixture: bool = False
    calibration: Calibration = Calibration.NONE
    cv_folds: int = bounded(0, minimum=0, maximum=MAX_CV_FOLDS)
    include_reference: bool = True


@dataclass(frozen=True)
class FeaturePlan:
    """Which input columns feed the model, and how."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


def plan_features(spec: GbmTrainingSpec, schema: Mapping[str, ColumnKind]) -> FeaturePlan:
    """Resolve the feature list against the data's columns; every problem names its field (a spec
    field, or the data column at fault)."""
    problems = bound_problems(spec)
    if 0 < spec.cv_folds < MIN_CV_FOLDS:
        problems.append(
            field_error(
                "cv_folds",
                f"`cv_folds` must be 0 (none) or {MIN_CV_FOLDS}..{MAX_CV_FOLDS}, got {spec.cv_folds}",
            )
        )
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
        problems.append(field_error("categorical_features", f"'{name}' is not one of the features"))
    numeric: list[str] = []
    categorical: list[str] = []
    for name in features:
        kind = schema.get(name)
        if kind is None or name == spec.label:
            continue
        if kind is ColumnKind.TEMPORAL:
            problems.append(column_error(name, "timestamps are not supported as features; send a number"))
        elif name in categorical_given or (
            spec.categorical_features is None and kind is ColumnKind.CATEGORICAL
        ):
            categorical.append(name)
        elif kind is ColumnKind.CATEGORICAL:
            problems.append(
                column_error(
                    name, "holds text but is not listed in `categorical_features`; send numbers or list it"
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


def training_rows(rows: int, validation_fraction: float) -> int:
    """The rows left to train on after the validation split (scikit-learn's: ceil(n x fraction))."""
    return rows - math.ceil(rows * validation_fraction) if validation_fraction > 0 else rows


def fold_models(spec: GbmTrainingSpec) -> int:
    """The fold models a training trains beside the returned one: `cv_folds`, or the folds a
    calibrator is cross-fitted on when there is no validation split to fit it on."""
    if spec.cv_folds:
        return spec.cv_folds
    if spec.calibration is not Calibration.NONE and spec.validation_fraction == 0:
        return DEFAULT_CALIBRATION_FOLDS
    return 0


def smallest_training_rows(rows: int, spec: GbmTrainingSpec) -> int:
    """The fewest rows any model of the training trains on: the returned model's, or a fold model's
    (every row but its held-out fold; a stratified fold may hold one row more than n / k per class)."""
    fewest = training_rows(rows, spec.validation_fraction)
    folds = fold_models(spec)
    if folds:
        fewest = min(fewest, rows - math.ceil(rows / folds) - 1)
    return fewest


def check_bagging(params: GbmParams, rows: int) -> None:
    """LightGBM bags int(bagging_fraction x training rows) rows and fails inside on an empty bag
    (an INTERNAL answer); refused here, naming the parameter, before any work. Its own parse of the
    fraction can land an ulp below 1/rows (1/48 of 48 rows fails), hence the margin."""
    if params.bagging_freq == 0 or params.bagging_fraction >= 1:
        return
    if params.bagging_fraction * rows > 1 + _BAG_MARGIN:
        return
    raise ValidationFailed(
        f"`params.bagging_fraction` {params.bagging_fraction:g} of {rows} training rows bags no row: "
        f"raise it above 1/{rows}, or set `params.bagging_freq` to 0",
        [field_error("params.bagging_fraction", f"must exceed 1/{rows}")],
    )


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
            "send more rows or set `validation_fraction` to 0",
            [field_error("label", f"{positives} positive and {negatives} negative rows")],
        )


@dataclass(frozen=True)
class CalibrationMetrics:
    """The calibrator measured on rows it did not see (out-of-fold over the held-out rows): before is
    LightGBM's probability, after the calibrated score."""

    method: str
    fitted_on: int
    measured_on: int
    brier_before: float
    brier_after: float
    ece_before: float
    ece_after: float


@dataclass(frozen=True)
class CrossValidationMetrics:
    """Stratified K-fold over every labelled row, each fold model scored on its held-out fold;
    standard deviations are the population's (ddof 0)."""

    folds: int
    auc_mean: float
    auc_std: float
    logloss_mean: float
    logloss_std: float


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
    calibration: CalibrationMetrics | None = None
    cross_validation: CrossValidationMetrics | None = None


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
class TrainingDurations:
    """Milliseconds per stage of one training: in the worker, but `load` (the data source reading or
    decoding the data, in the server), which the use case adds."""

    prepare: float
    train: float
    evaluate: float
    dump: float
    parity_fixture: float | None = None  # only when the fixture was asked for
    calibrate: float | None = None  # only when a calibrator was fitted
    cross_validate: float | None = None  # only when `cv_folds` was asked for
    load: float = 0.0


@dataclass(frozen=True)
class ParityFixture:
    """Rows keyed by input field (None = missing, "Infinity"/"-Infinity" for infinities) with
    LightGBM's own raw and probability scores for each, to check a scorer against."""

    rows: tuple[Mapping[str, Any], ...]
    raw_scores: tuple[float, ...]
    scores: tuple[float, ...]


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per non-empty equal-width bin of the score: its mean score, its share of positives, its rows."""

    predicted: tuple[float, ...]
    observed: tuple[float, ...]
    count: tuple[int, ...]


@dataclass(frozen=True)
class TrainingCurves:
    """What a report draws, on the evaluated rows: the ROC curve and the reliability curves."""

    roc_fpr: tuple[float, ...]
    roc_tpr: tuple[float, ...]
    calibration: ReliabilityCurve
    calibrated: ReliabilityCurve | None = None


@dataclass(frozen=True)
class GbmTrainingOutcome:
    model_state: Mapping[str, Any]  # the modelState contract itself, in LightGBM's own keys
    metrics: GbmMetrics
    feature_importance: Sequence[FeatureImportance]
    durations_ms: TrainingDurations
    library_version: str
    # OpenMP threads the training ran with: the worker's budget, fewer when other work held CPUs
    # as the task started.
    threads: int
    curves: TrainingCurves
    warnings: Sequence[str] = ()
    parity_fixture: ParityFixture | None = None
