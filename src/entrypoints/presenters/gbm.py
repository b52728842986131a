"""LightGBM training on the wire: a `TrainGbmRequest` to its spec, an outcome to `TrainGbmResponse`.
Shared by POST /train/gbm and the CLI's train-gbm."""

from __future__ import annotations

import dataclasses
from typing import Any

from domain.gbm.training import (
    Calibration,
    CalibrationMetrics,
    CategoricalEncoding,
    CrossValidationMetrics,
    GbmParams,
    GbmTrainingOutcome,
    GbmTrainingSpec,
    ParityFixture,
    ReliabilityCurve,
    TrainingCurves,
    TrainingDurations,
)
from entrypoints import contract as c
from entrypoints.presenters.wire import WireNames, names

# Every field, `params` included (`params.num_leaves` -> `params.numLeaves`), is its camelCased spec name.
GBM_NAMES = WireNames(spec_type=GbmTrainingSpec)

_PARAM_OF_WIRE_NAME: dict[str, str] = {
    GBM_NAMES.wire(f"params.{item.name}").removeprefix("params."): item.name
    for item in dataclasses.fields(GbmParams)
}


def _params(given: c.GbmParams | None) -> GbmParams:
    # Only what the caller set: for the rest, the spec's defaults are the ones that run.
    if given is None:
        return GbmParams()
    return GbmParams(**{_PARAM_OF_WIRE_NAME[name]: getattr(given, name) for name in given.model_fields_set})


def training_spec(body: c.TrainGbmRequest) -> GbmTrainingSpec:
    return GbmTrainingSpec(
        label=body.label,
        features=names(body.features),
        id_field=body.idField,
        categorical_features=names(body.categoricalFeatures),
        categorical_encoding=CategoricalEncoding(body.categoricalEncoding),
        max_categories=body.maxCategories,
        params=_params(body.params),
        validation_fraction=body.validationFraction,
        early_stopping_rounds=body.earlyStoppingRounds,
        include_parity_fixture=body.includeParityFixture,
        calibration=Calibration(body.calibration),
        cv_folds=body.cvFolds,
        include_reference=body.includeReference,
    )


def _durations(
    stages: TrainingDurations, upload_ms: float, decode_ms: float, total_ms: float
) -> dict[str, float]:
    # `decode` is the body's decoding by the entrypoint plus the data source's load (frame built);
    # `parse` is what the two were reported as together before they were told apart.
    decode = round(decode_ms + stages.load, 3)
    durations = {
        "upload": upload_ms,
        "decode": decode,
        "parse": round(upload_ms + decode, 3),
        "prepare": stages.prepare,
        "train": stages.train,
        "evaluate": stages.evaluate,
        "dump": stages.dump,
    }
    if stages.parity_fixture is not None:
        durations["parityFixture"] = stages.parity_fixture
    if stages.calibrate is not None:
        durations["calibrate"] = stages.calibrate
    if stages.cross_validate is not None:
        durations["crossValidate"] = stages.cross_validate
    durations["total"] = total_ms
    return durations


def _calibration(m: CalibrationMetrics) -> c.CalibrationMetrics:
    return c.CalibrationMetrics(
        method=m.method,
        fittedOn=m.fitted_on,
        measuredOn=m.measured_on,
        brierBefore=m.brier_before,
        brierAfter=m.brier_after,
        eceBefore=m.ece_before,
        eceAfter=m.ece_after,
    )


def _cross_validation(m: CrossValidationMetrics) -> c.CrossValidationMetrics:
    return c.CrossValidationMetrics(
        folds=m.folds,
        aucMean=m.auc_mean,
        aucStd=m.auc_std,
        loglossMean=m.logloss_mean,
        loglossStd=m.logloss_std,
    )


def _parity_fixture(fixture: ParityFixture) -> dict[str, Any]:
    return {"rows": list(fixture.rows), "rawScores": list(fixture.raw_scores), "scores": list(fixture.scores)}


def training_response(
    outcome: GbmTrainingOutcome, *, upload_ms: float, decode_ms: float, total_ms: float
) -> dict[str, Any]:
    """The TrainGbmResponse document. `modelState` (thousands of nodes) and `parityFixture` are plain
    documents passed through: validating them with pydantic would cost a noticeable share of a training."""
    m = outcome.metrics
    metrics = c.GbmMetrics(
        auc=m.auc,
        logloss=m.logloss,
        accuracy=m.accuracy,
        precision=m.precision,
        recall=m.recall,
        trainingSamples=m.training_samples,
        validationSamples=m.validation_samples,
        positiveRate=m.positive_rate,
        bestIteration=m.best_iteration,
        numTrees=m.num_trees,
        evaluatedOn=m.evaluated_on,
    )
    # Set only when they ran: an absent block, never a null one.
    if m.calibration is not None:
        metrics.calibration = _calibration(m.calibration)
    if m.cross_validation is not None:
        metrics.crossValidation = _cross_validation(m.cross_validation)
    response: dict[str, Any] = {
        "modelState": outcome.model_state,
        "metrics": metrics.model_dump(exclude_unset=True),
        "curves": _curves(outcome.curves),
        "featureImportance": [
            c.FeatureImportanceItem(field=f.field, importance=f.importance, selected=f.selected).model_dump()
            for f in outcome.feature_importance
        ],
        "durationMs": _durations(outcome.durations_ms, upload_ms, decode_ms, total_ms),
        "library": c.Library(name="lightgbm", version=outcome.library_version).model_dump(),
        "threads": outcome.threads,
        "warnings": [GBM_NAMES.message(warning) for warning in outcome.warnings],
    }
    if outcome.parity_fixture is not None:
        response["parityFixture"] = _parity_fixture(outcome.parity_fixture)
    return response


def training_job_result(outcome: GbmTrainingOutcome) -> dict[str, Any]:
    """The TrainGbmResponse of a `gbm_training` job. The replica that ran it never saw the request's
    upload, so `upload` and `decode` are 0 rather than figures of another process, and `total` is
    the sum of the stages the job timed (its wall time is the job's startedAt to finishedAt)."""
    stages = outcome.durations_ms
    optional = (stages.parity_fixture, stages.calibrate, stages.cross_validate)
    timed = stages.load + stages.prepare + stages.train + stages.evaluate + stages.dump
    total = round(timed + sum(value for value in optional if value is not None), 3)
    return training_response(outcome, upload_ms=0.0, decode_ms=0.0, total_ms=total)


def _reliability(curve: ReliabilityCurve) -> c.ReliabilityCurve:
    return c.ReliabilityCurve(
        predicted=list(curve.predicted), observed=list(curve.observed), count=list(curve.count)
    )


def _curves(curves: TrainingCurves) -> dict[str, Any]:
    wire = c.TrainingCurves(
        roc=c.Roc(fpr=list(curves.roc_fpr), tpr=list(curves.roc_tpr)),
        calibration=_reliability(curves.calibration),
    )
    if curves.calibrated is not None:
        wire.calibrated = _reliability(curves.calibrated)
    return wire.model_dump(exclude_unset=True)
