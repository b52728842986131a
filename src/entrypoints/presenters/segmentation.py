"""Segmentation on the wire: the request as a spec, how the request spells the spec's fields, and the
typed result written as openapi.yaml's SegmentationResult (through the generated models)."""

from __future__ import annotations

from typing import Any

from domain.segmentation import (
    CategoricalCentroid,
    Centroid,
    Characteristic,
    DbscanParameters,
    DistinguishingFeature,
    KMeansParameters,
    Segment,
    SegmentationResult,
    SegmentationSpec,
)
from entrypoints import contract as c
from entrypoints.presenters.wire import WireNames, names

# Every spec field is the camelCased request field; item paths (`fields[1]`) are kept as they are.
SEGMENTATION_NAMES = WireNames(SegmentationSpec)


def segmentation_spec(body: c.SegmentsRequest) -> SegmentationSpec:
    return SegmentationSpec(
        fields=names(body.fields),
        algorithm=body.algorithm,
        min_clusters=body.minClusters,
        max_clusters=body.maxClusters,
        random_state=body.randomState,
        eps=body.eps,
        min_samples=body.minSamples,
        silhouette_sample_size=body.silhouetteSampleSize,
        max_categories=body.maxCategories,
    )


def present_segmentation(result: SegmentationResult) -> dict[str, Any]:
    document = c.SegmentationResult(
        algorithm=result.algorithm,
        k=result.k,
        silhouette=result.silhouette,
        rowCount=result.row_count,
        fieldsUsed=list(result.fields_used),
        candidates=[
            c.Candidate(k=item.k, silhouette=item.silhouette, inertia=item.inertia)
            for item in result.candidates
        ],
        segments=[_segment(segment) for segment in result.segments],
        imputed={item.field: item.count for item in result.imputed},
        warnings=[_warning(text) for text in result.warnings],
        parameters=_parameters(result.parameters),
    )
    # Unset: the optional `category` of a numeric field's entries, which the wire omits.
    presented: dict[str, Any] = document.model_dump(exclude_unset=True)
    return presented


def _segment(segment: Segment) -> c.Segment:
    return c.Segment(
        id=segment.id,
        name=segment.name,
        size=segment.size,
        share=segment.share,
        centroid={item.field: _centroid(item) for item in segment.centroid},
        characteristics=[_characteristic(item) for item in segment.characteristics],
        distinguishingFeatures=[_feature(item) for item in segment.distinguishing_features],
    )


def _centroid(item: Centroid) -> float | dict[str, float]:
    if isinstance(item, CategoricalCentroid):
        return {share.category: share.share for share in item.shares}
    return item.mean


def _characteristic(item: Characteristic) -> c.Characteristic:
    presented = c.Characteristic(
        field=item.field,
        segmentValue=item.segment_value,
        populationValue=item.population_value,
        difference=item.difference,
        measure=item.measure,
    )
    if item.category is not None:
        presented.category = item.category
    return presented


def _feature(item: DistinguishingFeature) -> c.DistinguishingFeature:
    presented = c.DistinguishingFeature(field=item.field, score=item.score)
    if item.category is not None:
        presented.category = item.category
    return presented


def _parameters(parameters: KMeansParameters | DbscanParameters) -> dict[str, Any]:
    if isinstance(parameters, KMeansParameters):
        return {
            "fitSampleSize": parameters.fit_sample_size,
            "silhouetteSampleSize": parameters.silhouette_sample_size,
            "nInit": parameters.n_init,
        }
    return {
        "eps": parameters.eps,
        "minSamples": parameters.min_samples,
        "fitSampleSize": parameters.fit_sample_size,
        "epsEstimated": parameters.eps_estimated,
    }


def _warning(text: str) -> str:
    return SEGMENTATION_NAMES.message(text)
