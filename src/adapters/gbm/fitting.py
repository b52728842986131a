"""One LightGBM training on a subset of the encoded rows, shared by the returned model and the fold
models, so that every model of a request is trained with exactly the same parameters."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import train_test_split

from adapters.gbm.encoding import EncodedFeatures
from domain.errors import InsufficientData, ValidationFailed, field_error
from domain.gbm.training import GbmParams, GbmTrainingSpec
from domain.progress import ProgressReporter


def lightgbm_params(params: GbmParams) -> dict[str, Any]:
    """The spec's parameters as LightGBM's own parameters: the spec's fields are named as LightGBM
    names them, and every one is passed, so LightGBM's defaults never decide silently."""
    return dataclasses.asdict(params)


def split_rows(labels: np.ndarray, spec: GbmTrainingSpec) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation rows (sorted): a seeded stratified split, or every row and none."""
    rows = np.arange(len(labels))
    if spec.validation_fraction > 0:
        try:
            train_rows, valid_rows = train_test_split(
                rows, test_size=spec.validation_fraction, stratify=labels, random_state=spec.params.seed
            )
        except ValueError as exc:
            raise InsufficientData(
                f"too few rows for a validation fraction of {spec.validation_fraction}: {exc}",
                [field_error("validation_fraction", "too large for this data")],
            ) from exc
        train_rows.sort()
        valid_rows.sort()
    else:
        train_rows, valid_rows = rows, rows[:0]
    if spec.early_stopping_rounds is not None and len(valid_rows) == 0:
        raise ValidationFailed(
            "early stopping needs a validation split; set `validation_fraction` above 0",
            [field_error("early_stopping_rounds", "needs `validation_fraction` > 0")],
        )
    return train_rows, valid_rows


class Fitter:
    """Trains on rows of one encoded matrix with the spec's parameters and the given threads."""

    def __init__(self, encoded: EncodedFeatures, labels: np.ndarray, params: GbmParams, threads: int) -> None:
        self._encoded = encoded
        self._labels = labels
        self._params = lightgbm_params(params)
        self.num_iterations = int(self._params.pop("num_iterations"))
        self.sigmoid = params.sigmoid
        self._params.update(
            objective="binary",
            metric="binary_logloss",
            verbosity=-1,
            num_threads=threads,
            deterministic=True,
            force_col_wise=True,
        )

    def fit(
        self,
        train_rows: np.ndarray,
        valid_rows: np.ndarray,
        progress: ProgressReporter,
        *,
        num_iterations: int | None = None,
        early_stopping_rounds: int | None = None,
    ) -> lgb.Booster:
        x, y = self._encoded.matrix, self._labels
        every_row = len(train_rows) == len(y)
        train_set = lgb.Dataset(
            x if every_row else x[train_rows],  # every row: no copy of the matrix
            label=y if every_row else y[train_rows],
            feature_name=[f"f{i}" for i in range(x.shape[1])],
            categorical_feature=self._encoded.native_categorical_columns,
            params=self._params,
            free_raw_data=True,
        )
        callbacks: list[Any] = [lambda env: progress((env.iteration + 1) / env.end_iteration, "training")]
        valid_sets = []
        if len(valid_rows):
            valid_sets.append(train_set.create_valid(x[valid_rows], label=y[valid_rows]))
        if early_stopping_rounds is not None:
            callbacks.append(lgb.early_stopping(early_stopping_rounds, verbose=False))
        # The training booster itself, not a copy reloaded from its model text: it still holds the
        # scores of the rows it trained on, which the evaluation reads instead of predicting.
        return lgb.train(
            dict(self._params),
            train_set,
            num_boost_round=num_iterations or self.num_iterations,
            valid_sets=valid_sets,
            callbacks=callbacks,
            keep_training_booster=True,
        )

    def fold_trainer(self, num_iterations: int) -> Any:
        """A FoldTrainer (adapters.gbm.cross_validation): the fold models grow as many trees as the
        returned model kept, with no early stopping (their held-out fold must not choose them)."""

        def train_fold(
            fit_rows: np.ndarray, scored_rows: np.ndarray, progress: ProgressReporter
        ) -> tuple[np.ndarray, np.ndarray]:
            booster = self.fit(fit_rows, fit_rows[:0], progress, num_iterations=num_iterations)
            raw = np.asarray(booster.predict(self._encoded.matrix[scored_rows], raw_score=True))
            return self.probability(raw), raw

        return train_fold

    def probability(self, raw_margin: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.asarray(1.0 / (1.0 + np.exp(-self.sigmoid * raw_margin)))


@dataclass(frozen=True)
class Scored:
    """The returned model's scores on the rows its metrics, calibration and reference read: the
    validation rows, or the training rows without a split. `raw_margin` only when Platt needs it."""

    rows: np.ndarray
    source: str  # "validation" or "training"
    probability: np.ndarray
    raw_margin: np.ndarray | None


def score_evaluated_rows(
    booster: lgb.Booster,
    x: np.ndarray,
    train_rows: np.ndarray,
    valid_rows: np.ndarray,
    used_iterations: int,
    *,
    with_margin: bool,
) -> Scored:
    on_validation = len(valid_rows) > 0
    rows = valid_rows if on_validation else train_rows
    probability = held_scores(booster, x, rows, used_iterations, on_validation=on_validation)
    raw_margin = None
    if with_margin:
        raw_margin = np.asarray(booster.predict(x[rows], raw_score=True, num_iteration=used_iterations))
    return Scored(rows, "validation" if on_validation else "training", probability, raw_margin)


def held_scores(
    booster: lgb.Booster, x: np.ndarray, rows: np.ndarray, used_iterations: int, *, on_validation: bool
) -> np.ndarray:
    """The probabilities of the evaluated rows. LightGBM holds them for its training and validation
    rows after the last tree (equal to predict's, tested), read through the public custom-metric
    hook; only when early stopping kept fewer trees are the rows predicted again. At 1,000,000 x 20
    the second predict took 3.3 s of CPU, reading the held scores 0.07 s."""
    if used_iterations != booster.current_iteration():
        return np.asarray(booster.predict(x[rows], num_iteration=used_iterations))
    held: list[np.ndarray] = []

    def keep(scores: np.ndarray, _data: lgb.Dataset) -> tuple[str, float, bool]:
        held.append(scores)
        return "held_scores", 0.0, True

    if on_validation:
        booster.eval_valid(keep)
    else:
        booster.eval_train(keep)
    return np.asarray(held[0])
