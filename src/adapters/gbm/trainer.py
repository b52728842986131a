"""LightGBM behind the GbmTrainer port. Runs inside a compute worker process."""

from __future__ import annotations

import time
from dataclasses import replace

import lightgbm as lgb
import numpy as np
import polars as pl

from adapters.compute.cpu_budget import task_threads
from adapters.frames import FrameDataset
from adapters.gbm.booster_dump import dump_model
from adapters.gbm.calibration import calibrate_model, check_held_out
from adapters.gbm.cross_validation import OutOfFold, check_folds, out_of_fold
from adapters.gbm.curves import training_curves
from adapters.gbm.encoding import encode_features, label_vector
from adapters.gbm.fitting import Fitter, score_evaluated_rows, split_rows
from adapters.gbm.metrics import binary_metrics
from adapters.gbm.model_dump import model_state_from_dump
from adapters.gbm.parity_fixture import parity_fixture
from adapters.gbm.reference import model_reference
from application.ports import GbmTrainer
from domain.gbm.model_state import attach_blocks
from domain.gbm.training import (
    Calibration,
    FeaturePlan,
    GbmTrainingOutcome,
    GbmTrainingSpec,
    TrainingDurations,
    check_class_balance,
    fold_models,
    normalise_importance,
)
from domain.progress import ProgressReporter, StageProgress

_PREPARED = 0.05
_TRAINED = 0.9


class LightGbmTrainer(GbmTrainer[pl.DataFrame]):
    """Binary LightGBM. Trains with internal column names f0..fN (real names and categories may hold
    characters LightGBM rejects) and writes the real names into the model afterwards."""

    def __init__(self, num_threads: int = 1) -> None:
        self._threads = num_threads

    def train(
        self, dataset: FrameDataset, spec: GbmTrainingSpec, plan: FeaturePlan, progress: ProgressReporter
    ) -> GbmTrainingOutcome:
        clock = time.perf_counter()
        frame, threads = dataset.frame, task_threads(self._threads)
        y = label_vector(frame, spec.label)
        positives = int(y.sum())
        check_class_balance(positives, len(y) - positives, spec.validation_fraction)
        train_rows, valid_rows = split_rows(y, spec)
        folds = _fold_models(spec, y, valid_rows)
        encoded = encode_features(frame, plan, spec.categorical_encoding, spec.max_categories)
        x = encoded.matrix
        prepare_ms = _elapsed_ms(clock)
        progress(_PREPARED, "data prepared")

        # Each training (the returned model, then each fold model) takes an equal slice of the bar.
        trained = _PREPARED + (_TRAINED - _PREPARED) / (1 + folds)
        fitter = Fitter(encoded, y, spec.params, threads)
        clock = time.perf_counter()
        booster = fitter.fit(
            train_rows,
            valid_rows,
            StageProgress(progress, _PREPARED, trained),
            early_stopping_rounds=spec.early_stopping_rounds,
        )
        train_ms = _elapsed_ms(clock)

        clock = time.perf_counter()
        used = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        platt = spec.calibration is Calibration.PLATT
        scored = score_evaluated_rows(booster, x, train_rows, valid_rows, used, with_margin=platt)
        metrics = binary_metrics(
            y[scored.rows],
            scored.probability,
            training_samples=len(train_rows),
            validation_samples=len(valid_rows),
            positive_rate=positives / len(y),
            best_iteration=used,
            num_trees=used,
            evaluated_on=scored.source,
        )
        gains: dict[str, float] = dict.fromkeys(plan.inputs, 0.0)
        for name, gain in zip(
            encoded.column_field, booster.feature_importance("gain", iteration=used), strict=True
        ):
            gains[name] += float(gain)
        evaluate_ms = _elapsed_ms(clock)

        clock = time.perf_counter()
        model_text = booster.model_to_string(num_iteration=used)
        state = model_state_from_dump(
            dump_model(booster, used, model_text),
            feature_names=encoded.feature_names,
            input_features=encoded.input_features,
            model_text=model_text,
            seal=False,  # hashed and validated once, with its blocks, by attach_blocks below
        )
        dump_ms = _elapsed_ms(clock)
        fixture, fixture_ms = None, None
        if spec.include_parity_fixture:
            clock = time.perf_counter()
            fixture = parity_fixture(
                frame,
                plan,
                spec.categorical_encoding,
                encoded.input_features,
                booster,
                used,
                spec.params.seed,
            )
            fixture_ms = _elapsed_ms(clock)
        # Freed before the fold models train, one at a time: the memory of one training, as the
        # budget (domain/budget.py) estimates it.
        del booster

        clock = time.perf_counter()
        folded: OutOfFold | None = None
        if folds:
            fold_progress = StageProgress(progress, trained, _TRAINED)
            folded = out_of_fold(y, folds, spec.params.seed, fitter.fold_trainer(used), fold_progress)
            if spec.cv_folds:
                metrics = replace(metrics, cross_validation=folded.metrics())
        folds_ms = _elapsed_ms(clock)
        progress(_TRAINED, "models trained")

        clock = time.perf_counter()
        fitted, calibrate_ms = None, None
        if spec.calibration is not Calibration.NONE:
            fitted = calibrate_model(spec.calibration, y, scored, folded, spec.params.seed)
            if fitted.metrics is not None:
                metrics = replace(metrics, calibration=fitted.metrics)
            # Fold models trained only for the calibration are part of its cost.
            calibrate_ms = round(_elapsed_ms(clock) + (0.0 if spec.cv_folds else folds_ms), 3)

        clock = time.perf_counter()
        calibration = fitted.block if fitted is not None else None
        reference = None
        if spec.include_reference:
            reference = model_reference(frame, encoded.input_features, train_rows, y, scored, fitted)
        state = attach_blocks(state, calibration=calibration, reference=reference)
        dump_ms = round(dump_ms + _elapsed_ms(clock), 3)
        progress(1.0, "done")

        warnings = list(encoded.warnings)
        if used < fitter.num_iterations:
            warnings.append(f"early stopping kept {used} of {fitter.num_iterations} trees")
        if fitted is not None and fitted.warning is not None:
            warnings.append(fitted.warning)
        out_of_fold_calibrated = fitted.out_of_fold if fitted is not None else None
        return GbmTrainingOutcome(
            model_state=state,
            metrics=metrics,
            feature_importance=normalise_importance(gains),
            durations_ms=TrainingDurations(
                prepare=prepare_ms,
                train=train_ms,
                evaluate=evaluate_ms,
                dump=dump_ms,
                parity_fixture=fixture_ms,
                calibrate=calibrate_ms,
                cross_validate=folds_ms if spec.cv_folds else None,
            ),
            library_version=lgb.__version__,
            threads=threads,
            warnings=tuple(warnings),
            parity_fixture=fixture,
            curves=training_curves(y[scored.rows], scored.probability, out_of_fold_calibrated),
        )


def _fold_models(spec: GbmTrainingSpec, y: np.ndarray, valid_rows: np.ndarray) -> int:
    """The fold models to train (domain `fold_models`), refusing before any training what the data
    cannot support: folds without both classes, a calibrator with too few held-out rows."""
    folds = fold_models(spec)
    if spec.cv_folds:
        check_folds(y, spec.cv_folds, "cv_folds")
    if spec.calibration is not Calibration.NONE:
        check_held_out(
            y[valid_rows] if len(valid_rows) else y, "validation" if len(valid_rows) else "cross_fitted"
        )
        if not len(valid_rows):
            check_folds(y, folds, "calibration")
    return folds


def _elapsed_ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 3)
