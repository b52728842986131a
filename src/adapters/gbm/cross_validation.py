"""Stratified K-fold over every labelled row: each fold model (the same parameters and seed as the
returned model) scores the fold it did not train on. The out-of-fold scores serve twice: the
cross-validated metrics (`cv_folds`), and the held-out rows of a calibrator when there is no
validation split."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from adapters.gbm.metrics import log_loss, roc_auc
from domain.errors import InsufficientData, field_error
from domain.gbm.training import CrossValidationMetrics
from domain.progress import ProgressReporter, StageProgress

# Trains on the given rows, reporting its own 0..1 progress, and returns the probability and the
# raw margin of the other given rows.
FoldTrainer = Callable[[np.ndarray, np.ndarray, ProgressReporter], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class OutOfFold:
    probability: np.ndarray
    raw_margin: np.ndarray
    folds: int
    auc: tuple[float, ...]
    logloss: tuple[float, ...]

    def metrics(self) -> CrossValidationMetrics:
        return CrossValidationMetrics(
            folds=self.folds,
            auc_mean=float(np.mean(self.auc)),
            auc_std=float(np.std(self.auc)),
            logloss_mean=float(np.mean(self.logloss)),
            logloss_std=float(np.std(self.logloss)),
        )


def check_folds(labels: np.ndarray, folds: int, field: str) -> None:
    """Each fold must hold both classes (so each fold's AUC exists): at least `folds` rows of each."""
    positives = int(np.count_nonzero(labels))
    fewest = min(positives, len(labels) - positives)
    if fewest < folds:
        raise InsufficientData(
            f"{folds} stratified folds need at least {folds} rows of each class; the label has "
            f"{positives} positive and {len(labels) - positives} negative rows",
            [field_error(field, f"{folds} folds, {fewest} rows of the rarer class")],
        )


def out_of_fold(
    labels: np.ndarray, folds: int, seed: int, train_fold: FoldTrainer, progress: ProgressReporter
) -> OutOfFold:
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probability = np.empty(len(labels))
    raw_margin = np.empty(len(labels))
    aucs: list[float] = []
    losses: list[float] = []
    for number, (fit_rows, scored_rows) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold_progress = StageProgress(progress, number / folds, (number + 1) / folds)
        scored = np.sort(scored_rows)
        p, m = train_fold(np.sort(fit_rows), scored, fold_progress)
        probability[scored], raw_margin[scored] = p, m
        auc = roc_auc(labels[scored], p)
        assert auc is not None  # stratified folds of `check_folds`' sizes hold both classes
        aucs.append(auc)
        losses.append(log_loss(labels[scored], p))
    return OutOfFold(probability, raw_margin, folds, tuple(aucs), tuple(losses))
