"""The rules of segmentation that need no data library: what a request may ask (spec fields named in
errors), the choice of k, and how segments are named."""

from __future__ import annotations

from typing import Any

import pytest

from domain.data import ColumnKind
from domain.errors import InsufficientData, ValidationFailed
from domain.segmentation import (
    AVERAGE_NAME,
    FeatureSignal,
    SegmentationSpec,
    candidate_ks,
    choose_k,
    humanize,
    name_segments,
    segment_name,
    selected_fields,
    validate_segmentation_spec,
)

SCHEMA = {
    "income": ColumnKind.NUMERIC,
    "age": ColumnKind.NUMERIC,
    "region": ColumnKind.CATEGORICAL,
    "active": ColumnKind.BOOLEAN,
    "signup": ColumnKind.TEMPORAL,
}


def _fields_in(error: ValidationFailed) -> list[str]:
    return [d["field"] for d in error.details]


def test_a_valid_spec_passes() -> None:
    validate_segmentation_spec(SegmentationSpec(), SCHEMA, 100)
    validate_segmentation_spec(SegmentationSpec(fields=("income", "region", "active")), SCHEMA, 100)
    validate_segmentation_spec(SegmentationSpec(algorithm="dbscan", eps=0.5, min_samples=5), SCHEMA, 1)


def test_the_edges_of_each_range_are_allowed() -> None:
    edges = SegmentationSpec(
        min_clusters=50,
        max_clusters=50,
        random_state=2**31 - 1,
        silhouette_sample_size=20_000,
        max_categories=100,
        fit_sample_size=1000,
        dbscan_sample_size=1000,
    )
    validate_segmentation_spec(edges, SCHEMA, 100)
    low = SegmentationSpec(random_state=0, silhouette_sample_size=100, max_categories=1, min_samples=1)
    validate_segmentation_spec(low, SCHEMA, 100)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"fields": ("income", "nope")}, "fields[1]", "unknown field 'nope'"),
        ({"fields": ("signup",)}, "fields[0]", "date/time"),
        ({"fields": ("income", "income")}, "fields[1]", "listed twice"),
        ({"fields": ()}, "fields", "at least one field"),
        ({"min_clusters": 1}, "min_clusters", "between 2 and 50"),
        ({"min_clusters": 6, "max_clusters": 5}, "min_clusters", "<= `max_clusters`"),
        ({"max_clusters": 51}, "max_clusters", "between 2 and 50"),
        ({"algorithm": "hdbscan"}, "algorithm", "kmeans, dbscan"),
        ({"algorithm": "dbscan", "eps": 0.0}, "eps", "> 0"),
        ({"algorithm": "dbscan", "eps": float("nan")}, "eps", "finite"),
        ({"algorithm": "dbscan", "min_samples": 0}, "min_samples", "between 1 and 100000"),
        ({"random_state": -1}, "random_state", "between 0 and 2147483647"),
        ({"random_state": 2**31}, "random_state", "between 0 and 2147483647"),
        ({"silhouette_sample_size": 50}, "silhouette_sample_size", "between 100 and 20000"),
        ({"silhouette_sample_size": 20_001}, "silhouette_sample_size", "between 100 and 20000"),
        ({"max_categories": 0}, "max_categories", "between 1 and 100"),
        ({"fit_sample_size": 999}, "fit_sample_size", ">= 1000"),
        ({"dbscan_sample_size": 999}, "dbscan_sample_size", ">= 1000"),
    ],
)
def test_each_bad_spec_names_its_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_segmentation_spec(SegmentationSpec(**changes), SCHEMA, 100)
    assert field in _fields_in(caught.value)
    assert any(words in d["message"] for d in caught.value.details)


def test_every_problem_is_reported_at_once() -> None:
    spec = SegmentationSpec(fields=("nope", "signup"), min_clusters=1, max_clusters=60)
    with pytest.raises(ValidationFailed) as caught:
        validate_segmentation_spec(spec, SCHEMA, 100)
    assert set(_fields_in(caught.value)) >= {"fields[0]", "fields[1]", "min_clusters", "max_clusters"}


def test_no_numeric_field_when_fields_is_null() -> None:
    schema = {"region": ColumnKind.CATEGORICAL, "active": ColumnKind.BOOLEAN}
    with pytest.raises(ValidationFailed) as caught:
        validate_segmentation_spec(SegmentationSpec(), schema, 100)
    assert _fields_in(caught.value) == ["fields"]
    # Listing non-numeric fields explicitly is allowed: they are one-hot encoded.
    validate_segmentation_spec(SegmentationSpec(fields=("region", "active")), schema, 100)


def test_empty_or_too_small_data_is_insufficient() -> None:
    with pytest.raises(InsufficientData, match="no rows"):
        validate_segmentation_spec(SegmentationSpec(), SCHEMA, 0)
    with pytest.raises(InsufficientData, match="at least 4 rows"):
        validate_segmentation_spec(SegmentationSpec(min_clusters=3), SCHEMA, 3)
    validate_segmentation_spec(SegmentationSpec(min_clusters=3), SCHEMA, 4)


def test_selected_fields_default_to_numeric_in_schema_order() -> None:
    assert selected_fields(SegmentationSpec(), SCHEMA) == ("income", "age")
    assert selected_fields(SegmentationSpec(fields=("region", "age")), SCHEMA) == ("region", "age")


def test_candidate_ks_are_capped_by_distinct_rows() -> None:
    assert candidate_ks(SegmentationSpec(), 1000) == range(2, 9)
    assert candidate_ks(SegmentationSpec(), 5) == range(2, 5)
    assert candidate_ks(SegmentationSpec(min_clusters=3, max_clusters=4), 4) == range(3, 4)
    with pytest.raises(InsufficientData, match="3 distinct rows"):
        candidate_ks(SegmentationSpec(min_clusters=3), 3)


def test_choose_k_takes_the_best_silhouette_and_the_smaller_k_on_ties() -> None:
    assert choose_k([(2, 0.4), (3, 0.7), (4, 0.6)]) == 3
    assert choose_k([(2, 0.5), (3, 0.7), (4, 0.7)]) == 3
    assert choose_k([(2, None), (3, 0.1), (4, None)]) == 3
    assert choose_k([(3, None), (2, None)]) == 2


def test_humanize() -> None:
    assert humanize("total_spend") == "total spend"
    assert humanize("totalSpend") == "total spend"
    assert humanize("Total-Spend") == "total spend"
    assert humanize("visits30d") == "visits30d"


def test_name_from_the_two_strongest_signals() -> None:
    signals = [
        FeatureSignal("visits", 0.6),
        FeatureSignal("income", 1.2),
        FeatureSignal("age", -0.9),
    ]
    assert segment_name(signals) == "High income, young"
    assert segment_name(signals, max_parts=3) == "High income, young, high visits"


def test_name_wording_follows_strength_and_sign() -> None:
    assert segment_name([FeatureSignal("income", 1.6)]) == "Very high income"
    assert segment_name([FeatureSignal("income", -1.6)]) == "Very low income"
    assert segment_name([FeatureSignal("income", -0.7)]) == "Low income"
    assert segment_name([FeatureSignal("age", 2.0)]) == "Much older"
    assert segment_name([FeatureSignal("totalSpend", 0.8)]) == "High total spend"


def test_weak_signals_give_the_average_name() -> None:
    assert segment_name([FeatureSignal("income", 0.3), FeatureSignal("age", -0.49)]) == AVERAGE_NAME
    assert segment_name([]) == AVERAGE_NAME


def test_categories_are_named_only_when_over_represented_and_in_the_majority() -> None:
    majority = FeatureSignal("region", 1.0, "north", 0.8)
    assert segment_name([majority, FeatureSignal("income", 0.7)]) == "Region: north, high income"
    # Under-represented: "not north" says little about who is in the segment.
    assert segment_name([FeatureSignal("region", -3.0, "north", 0.01)]) == AVERAGE_NAME
    # Over-represented but a minority of the segment.
    assert segment_name([FeatureSignal("region", 2.0, "north", 0.3)]) == AVERAGE_NAME


def test_segment_names_are_made_distinct() -> None:
    profiles = [
        [FeatureSignal("income", 1.2), FeatureSignal("age", -0.9), FeatureSignal("visits", 0.8)],
        [FeatureSignal("income", 1.1), FeatureSignal("age", -0.8), FeatureSignal("visits", -0.7)],
        [FeatureSignal("income", 0.1)],
        [FeatureSignal("income", -0.2)],
    ]
    names = name_segments(profiles)
    # The first two differ only by their third signal, which is then added to both.
    assert names[:2] == ["High income, young, high visits", "High income, young, low visits"]
    # Nothing tells the last two apart: they are numbered.
    assert names[2:] == [AVERAGE_NAME, f"{AVERAGE_NAME} (2)"]
    assert name_segments([]) == []
