"""Segmentation on the wire: the request read into a spec (the contract's edges included), errors and
failures spelled as the request spells its fields, and the typed result written as the JSON document
clients have always read."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pydantic
import pytest

from domain.data import ColumnKind
from domain.errors import ValidationFailed
from domain.jobs import EchoedResult, JobFailure, RequestEcho
from domain.segmentation import (
    Candidate,
    CategoricalCentroid,
    CategoryShare,
    Characteristic,
    DbscanParameters,
    DistinguishingFeature,
    Imputation,
    KMeansParameters,
    NumericCentroid,
    Segment,
    SegmentationResult,
    SegmentationSpec,
    validate_segmentation_spec,
)
from entrypoints import contract as c
from entrypoints.presenters.jobs import JobResultPresenter
from entrypoints.presenters.segmentation import (
    SEGMENTATION_NAMES,
    present_segmentation,
    segmentation_spec,
)

DATA = {"rows": [{"x": 1.0}]}


def _request(**fields: Any) -> c.SegmentsRequest:
    return c.SegmentsRequest.model_validate({"data": DATA, **fields})


def test_a_bare_request_maps_to_the_specs_defaults() -> None:
    assert segmentation_spec(_request()) == SegmentationSpec()


def test_every_request_field_reaches_the_spec() -> None:
    spec = segmentation_spec(
        _request(
            fields=["income", "region"],
            algorithm="dbscan",
            minClusters=3,
            maxClusters=7,
            randomState=9,
            eps=0.4,
            minSamples=6,
            silhouetteSampleSize=2000,
            maxCategories=4,
        )
    )
    assert spec == SegmentationSpec(
        fields=("income", "region"),
        algorithm="dbscan",
        min_clusters=3,
        max_clusters=7,
        random_state=9,
        eps=0.4,
        min_samples=6,
        silhouette_sample_size=2000,
        max_categories=4,
    )


def test_the_contract_takes_a_silhouette_sample_up_to_20000_and_refuses_more() -> None:
    # The contract used to allow 100,000, which the engine then refused: the domain's bound now rules.
    assert segmentation_spec(_request(silhouetteSampleSize=20_000)).silhouette_sample_size == 20_000
    with pytest.raises(pydantic.ValidationError, match="silhouetteSampleSize"):
        _request(silhouetteSampleSize=20_001)


def test_errors_name_the_request_fields() -> None:
    schema = {"income": ColumnKind.NUMERIC}
    spec = SegmentationSpec(fields=("income", "ghost"), min_clusters=6, max_clusters=3)
    with pytest.raises(ValidationFailed) as caught:
        validate_segmentation_spec(spec, schema, 100)
    wire = SEGMENTATION_NAMES.error(caught.value)
    assert {"field": "fields[1]", "message": "unknown field 'ghost'"} in wire.details
    assert {"field": "minClusters", "message": "must be <= maxClusters"} in wire.details


def test_a_failed_segmentation_job_names_the_request_fields() -> None:
    failure = JobFailure("INSUFFICIENT_DATA", "raise `eps` or lower `min_samples`")
    shown = JobResultPresenter().present_failure("segmentation", failure)
    assert shown == JobFailure("INSUFFICIENT_DATA", "raise eps or lower minSamples")


def _kmeans_result() -> SegmentationResult:
    return SegmentationResult(
        algorithm="kmeans",
        k=2,
        silhouette=0.61,
        row_count=10,
        fields_used=("income", "region"),
        candidates=(Candidate(2, 0.61, 12.5), Candidate(3, None, float("nan"))),
        segments=(
            Segment(
                id=0,
                name="High income",
                size=6,
                share=0.6,
                centroid=(
                    NumericCentroid("income", 80.0),
                    CategoricalCentroid(
                        "region", (CategoryShare("north", 0.5), CategoryShare("missing", 0.5))
                    ),
                ),
                characteristics=(
                    Characteristic("income", 80.0, 60.0, 1.2, "z"),
                    Characteristic("region", 0.5, 0.4, 1.25, "lift", "north"),
                ),
                distinguishing_features=(
                    DistinguishingFeature("income", 1.2),
                    DistinguishingFeature("region", 0.2, "north"),
                ),
            ),
        ),
        imputed=(Imputation("region", 2),),
        warnings=("field 'flat' dropped: every value is 3", "`max_clusters` lowered to 3: ..."),
        parameters=KMeansParameters(fit_sample_size=10, silhouette_sample_size=10, n_init=3),
    )


KMEANS_WIRE = {
    "algorithm": "kmeans",
    "k": 2,
    "silhouette": 0.61,
    "rowCount": 10,
    "fieldsUsed": ["income", "region"],
    "candidates": [
        {"k": 2, "silhouette": 0.61, "inertia": 12.5},
        {"k": 3, "silhouette": None, "inertia": None},
    ],
    "segments": [
        {
            "id": 0,
            "name": "High income",
            "size": 6,
            "share": 0.6,
            "centroid": {"income": 80.0, "region": {"north": 0.5, "missing": 0.5}},
            "characteristics": [
                {
                    "field": "income",
                    "segmentValue": 80.0,
                    "populationValue": 60.0,
                    "difference": 1.2,
                    "measure": "z",
                },
                {
                    "field": "region",
                    "category": "north",
                    "segmentValue": 0.5,
                    "populationValue": 0.4,
                    "difference": 1.25,
                    "measure": "lift",
                },
            ],
            "distinguishingFeatures": [
                {"field": "income", "score": 1.2},
                {"field": "region", "score": 0.2, "category": "north"},
            ],
        }
    ],
    "imputed": {"region": 2},
    "warnings": ["field 'flat' dropped: every value is 3", "maxClusters lowered to 3: ..."],
    "parameters": {"fitSampleSize": 10, "silhouetteSampleSize": 10, "nInit": 3},
}


def test_a_result_is_written_as_the_wire_document_key_for_key_and_in_order() -> None:
    document = JobResultPresenter().present(EchoedResult(_kmeans_result(), RequestEcho("s1", "t1")))
    expected = {**KMEANS_WIRE, "schemaId": "s1", "tenantId": "t1"}
    # Compared as JSON text: key order and omitted keys count, and NaN must have become null.
    assert json.dumps(document, allow_nan=False) == json.dumps(expected)


def test_dbscan_parameters_are_written_in_their_wire_order() -> None:
    parameters = DbscanParameters(eps=0.25, min_samples=8, fit_sample_size=1000, eps_estimated=True)
    result = dataclasses.replace(_kmeans_result(), algorithm="dbscan", parameters=parameters)
    presented = present_segmentation(result)
    assert list(presented["parameters"].items()) == [
        ("eps", 0.25),
        ("minSamples", 8),
        ("fitSampleSize", 1000),
        ("epsEstimated", True),
    ]
