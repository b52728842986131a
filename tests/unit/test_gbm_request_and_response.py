"""POST /train/gbm on the wire: the request's camelCase becomes the training spec (the spec's defaults
for what the caller left out), an outcome becomes the TrainGbmResponse document, and training errors
are spelled as the request spells its fields."""

from __future__ import annotations

import dataclasses
from typing import Any

from domain.errors import ValidationFailed, field_error
from domain.gbm.training import (
    CalibrationMetrics,
    CrossValidationMetrics,
    FeatureImportance,
    GbmMetrics,
    GbmParams,
    GbmTrainingOutcome,
    ParityFixture,
    ReliabilityCurve,
    TrainingCurves,
    TrainingDurations,
)
from entrypoints import contract as c
from entrypoints.presenters.gbm import GBM_NAMES, training_response, training_spec


def _request(**fields: Any) -> c.TrainGbmRequest:
    return c.TrainGbmRequest.model_validate({"data": {"rows": []}, "label": "y", **fields})


def test_given_params_reach_the_spec_and_the_rest_keep_the_specs_defaults() -> None:
    spec = training_spec(_request(params={"numLeaves": 7, "lambdaL1": 0.5, "minSumHessianInLeaf": 0.01}))
    assert spec.params == GbmParams(num_leaves=7, lambda_l1=0.5, min_sum_hessian_in_leaf=0.01)
    assert training_spec(_request()).params == GbmParams()
    assert training_spec(_request(params={})).params == GbmParams()


def test_every_contract_param_is_a_spec_param() -> None:
    wire = set(c.GbmParams.model_fields)
    spelled = {GBM_NAMES.wire(f"params.{item.name}") for item in dataclasses.fields(GbmParams)}
    assert spelled == {f"params.{name}" for name in wire}


def test_the_rest_of_the_request_reaches_the_spec() -> None:
    spec = training_spec(
        _request(
            features=["a", "b"],
            idField=None,
            categoricalFeatures=["b"],
            categoricalEncoding="native",
            maxCategories=9,
            validationFraction=0.1,
            earlyStoppingRounds=4,
            includeParityFixture=True,
        )
    )
    assert (spec.features, spec.id_field, spec.categorical_features) == (("a", "b"), None, ("b",))
    assert (spec.categorical_encoding, spec.max_categories) == ("native", 9)
    assert (spec.validation_fraction, spec.early_stopping_rounds) == (0.1, 4)
    assert spec.include_parity_fixture is True


def test_calibration_cv_folds_and_the_reference_reach_the_spec() -> None:
    default = training_spec(_request())
    assert (default.calibration, default.cv_folds, default.include_reference) == ("none", 0, True)
    spec = training_spec(_request(calibration="platt", cvFolds=5, includeReference=False))
    assert (spec.calibration, spec.cv_folds, spec.include_reference) == ("platt", 5, False)


def _outcome(fixture: ParityFixture | None = None) -> GbmTrainingOutcome:
    return GbmTrainingOutcome(
        model_state={"schema_version": 1, "trees": []},
        metrics=GbmMetrics(
            auc=None,
            logloss=0.5,
            accuracy=0.75,
            precision=0.5,
            recall=0.25,
            training_samples=80,
            validation_samples=20,
            positive_rate=0.3,
            best_iteration=12,
            num_trees=12,
            evaluated_on="validation",
        ),
        feature_importance=(FeatureImportance("age", 1.0, True), FeatureImportance("zip", 0.0, False)),
        durations_ms=TrainingDurations(
            prepare=1.0,
            train=2.0,
            evaluate=3.0,
            dump=4.0,
            parity_fixture=None if fixture is None else 5.0,
            load=0.05,
        ),
        library_version="4.5.0",
        threads=2,
        curves=TrainingCurves(
            roc_fpr=(0.0, 0.5, 1.0),
            roc_tpr=(0.0, 0.75, 1.0),
            calibration=ReliabilityCurve(predicted=(0.15, 0.8), observed=(0.1, 0.9), count=(12, 8)),
        ),
        warnings=("w",),
        parity_fixture=fixture,
    )


def test_the_response_document_in_the_contracts_order() -> None:
    state = {"schema_version": 1, "trees": []}
    outcome = dataclasses.replace(_outcome(), model_state=state)
    response = training_response(outcome, upload_ms=0.25, decode_ms=0.2, total_ms=11.0)
    assert list(response) == [
        "modelState", "metrics", "curves", "featureImportance", "durationMs", "library", "threads", "warnings"
    ]  # fmt: skip
    assert response["modelState"] is state  # passed through, never copied or validated
    assert response["metrics"] == {
        "auc": None,
        "logloss": 0.5,
        "accuracy": 0.75,
        "precision": 0.5,
        "recall": 0.25,
        "trainingSamples": 80,
        "validationSamples": 20,
        "positiveRate": 0.3,
        "bestIteration": 12,
        "numTrees": 12,
        "evaluatedOn": "validation",
    }
    # The optional blocks are absent, never null, when they did not run.
    optional = {"calibration", "crossValidation"}
    assert list(response["metrics"]) == [name for name in c.GbmMetrics.model_fields if name not in optional]
    assert response["featureImportance"] == [
        {"field": "age", "importance": 1.0, "selected": True},
        {"field": "zip", "importance": 0.0, "selected": False},
    ]
    # decode: the entrypoint's part and the data source's load; parse: upload and decode together.
    assert list(response["durationMs"].items()) == [
        ("upload", 0.25), ("decode", 0.25), ("parse", 0.5), ("prepare", 1.0), ("train", 2.0),
        ("evaluate", 3.0), ("dump", 4.0), ("total", 11.0)
    ]  # fmt: skip
    assert response["library"] == {"name": "lightgbm", "version": "4.5.0"}
    assert response["threads"] == 2
    assert response["warnings"] == ["w"]


def test_a_parity_fixture_comes_last_and_is_timed_before_the_total() -> None:
    fixture = ParityFixture(
        rows=({"age": None}, {"age": "Infinity"}), raw_scores=(0.1, 0.2), scores=(0.6, 0.7)
    )
    response = training_response(_outcome(fixture), upload_ms=0.25, decode_ms=0.2, total_ms=11.0)
    assert list(response)[-1] == "parityFixture"
    assert response["parityFixture"] == {
        "rows": [{"age": None}, {"age": "Infinity"}],
        "rawScores": [0.1, 0.2],
        "scores": [0.6, 0.7],
    }
    assert list(response["durationMs"])[-2:] == ["parityFixture", "total"]


def test_training_errors_are_spelled_as_the_request_spells_its_fields() -> None:
    error = GBM_NAMES.error(
        ValidationFailed(
            "early stopping needs a validation split; set `validation_fraction` above 0",
            [
                field_error("early_stopping_rounds", "needs `validation_fraction` > 0"),
                field_error("params.num_leaves", "must be between 2 and 4096"),
                field_error("order_total", "holds text but is not listed in `categorical_features`"),
            ],
        )
    )
    assert error.message == "early stopping needs a validation split; set validationFraction above 0"
    assert error.details == [
        {"field": "earlyStoppingRounds", "message": "needs validationFraction > 0"},
        {"field": "params.numLeaves", "message": "must be between 2 and 4096"},
        {"field": "order_total", "message": "holds text but is not listed in categoricalFeatures"},
    ]


def test_calibration_and_cross_validation_metrics_and_their_stages_on_the_wire() -> None:
    outcome = _outcome()
    metrics = dataclasses.replace(
        outcome.metrics,
        calibration=CalibrationMetrics("isotonic", 20, 20, 0.2, 0.15, 0.1, 0.03),
        cross_validation=CrossValidationMetrics(3, 0.8, 0.01, 0.45, 0.02),
    )
    durations = dataclasses.replace(outcome.durations_ms, calibrate=6.0, cross_validate=7.0)
    outcome = dataclasses.replace(outcome, metrics=metrics, durations_ms=durations)
    response = training_response(outcome, upload_ms=0.25, decode_ms=0.2, total_ms=11.0)
    assert response["metrics"]["calibration"] == {
        "method": "isotonic",
        "fittedOn": 20,
        "measuredOn": 20,
        "brierBefore": 0.2,
        "brierAfter": 0.15,
        "eceBefore": 0.1,
        "eceAfter": 0.03,
    }
    assert response["metrics"]["crossValidation"] == {
        "folds": 3,
        "aucMean": 0.8,
        "aucStd": 0.01,
        "loglossMean": 0.45,
        "loglossStd": 0.02,
    }
    assert list(response["durationMs"])[-3:] == ["calibrate", "crossValidate", "total"]
    c.GbmMetrics.model_validate(response["metrics"])
