"""Segmenting customers with the scikit-learn engine: recovery of known structure, determinism, encoding,
DBSCAN, and a typed result of plain Python values."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, silhouette_score
from threadpoolctl import threadpool_limits

import adapters.segmentation.dbscan as dbscan
from adapters.frames import PolarsDataset
from adapters.segmentation.segmenter import SklearnSegmenter, fit_segments
from adapters.segmentation.silhouette import silhouettes
from application.ports import Segmenter
from domain.errors import InsufficientData, ValidationFailed
from domain.progress import no_progress
from domain.segmentation import (
    OUTLIERS_ID,
    OUTLIERS_NAME,
    CategoricalCentroid,
    DbscanParameters,
    DistinguishingFeature,
    KMeansParameters,
    NumericCentroid,
    Segment,
    SegmentationResult,
    SegmentationSpec,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # The test cores are shared with other suites: oversubscribed OpenMP spin-waits make tiny fits
    # ~15x slower. One thread keeps the file fast; results do not depend on it.
    with threadpool_limits(limits=1):
        yield


def _blobs(
    rows: int = 1500, centres: int = 4, features: int = 4, seed: int = 7
) -> tuple[PolarsDataset, np.ndarray]:
    x, truth = make_blobs(
        n_samples=rows, n_features=features, centers=centres, cluster_std=1.0, random_state=seed
    )
    # Different scales and offsets per field: standardisation must make them comparable.
    frame = pl.DataFrame({f"f{i}": x[:, i] * (i + 1) * 10.0 + 100.0 * i for i in range(features)})
    return PolarsDataset(frame), truth


def _centroid(segment: Segment, name: str) -> float | dict[str, float]:
    item = next(c for c in segment.centroid if c.field == name)
    if isinstance(item, CategoricalCentroid):
        return {share.category: share.share for share in item.shares}
    assert isinstance(item, NumericCentroid)
    return item.mean


def _plain_python(value: object, where: str = "result") -> None:
    """Every number is a Python int or float (numpy's subclass float64 included in neither), and every
    collection a tuple: what a presenter can write without converting."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            _plain_python(getattr(value, item.name), f"{where}.{item.name}")
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            _plain_python(item, f"{where}[{index}]")
    else:
        assert type(value) in (int, float, str, bool, type(None)), f"{where}: {type(value).__name__}"


def test_recovers_four_blobs() -> None:
    dataset, truth = _blobs()
    labels, result = fit_segments(dataset, SegmentationSpec(), no_progress)
    assert result.k == 4
    assert adjusted_rand_score(truth, labels) > 0.9
    assert [c.k for c in result.candidates] == list(range(2, 9))
    best = max(result.candidates, key=lambda c: c.silhouette)
    assert best.k == 4 and result.silhouette == best.silhouette
    inertias = [c.inertia for c in result.candidates]
    assert inertias[2] < inertias[1] < inertias[0]  # more clusters, less inertia (up to the true k)


def test_recovers_four_blobs_when_fitting_on_a_sample() -> None:
    dataset, truth = _blobs(rows=6000)
    spec = SegmentationSpec(fit_sample_size=1500, silhouette_sample_size=800)
    labels, result = fit_segments(dataset, spec, no_progress)
    assert result.k == 4
    assert adjusted_rand_score(truth, labels) > 0.9
    assert isinstance(result.parameters, KMeansParameters)
    assert result.parameters.fit_sample_size == 1500
    assert result.parameters.silhouette_sample_size == 800
    # Every row got a segment (the final model is fitted on all rows, not only the sample).
    assert sum(s.size for s in result.segments) == 6000
    # Candidate inertias are measured on all rows: at the true k they match a fit on all rows, where
    # the sample fit's own inertia would be a quarter of it.
    _, full = fit_segments(dataset, SegmentationSpec(), no_progress)
    at_four = [c.inertia for c in (*result.candidates, *full.candidates) if c.k == 4]
    assert at_four[0] == pytest.approx(at_four[1], rel=0.01)


def test_same_input_gives_the_same_result() -> None:
    dataset, _ = _blobs(rows=3000)
    spec = SegmentationSpec(fit_sample_size=1000, silhouette_sample_size=500)
    first_labels, first = fit_segments(dataset, spec, no_progress)
    second_labels, second = fit_segments(dataset, spec, no_progress)
    assert first == second
    assert np.array_equal(first_labels, second_labels)
    # Another seed samples other rows: proof that the seed is what makes it repeatable.
    _, other = fit_segments(dataset, SegmentationSpec(fit_sample_size=1000, random_state=1), no_progress)
    assert other.candidates != first.candidates


def test_result_shape_and_profiles_in_original_units() -> None:
    dataset, _ = _blobs()
    labels, result = _plain_result(dataset, SegmentationSpec())
    assert result.algorithm == "kmeans" and result.row_count == 1500
    assert result.fields_used == ("f0", "f1", "f2", "f3")
    assert result.imputed == () and result.warnings == ()
    segments = result.segments
    assert [s.id for s in segments] == list(range(result.k))
    for segment in segments:
        assert [c.field for c in segment.centroid] == list(result.fields_used)
        assert [c.field for c in segment.characteristics] == list(result.fields_used)
    sizes = [s.size for s in segments]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == 1500
    assert math.isclose(sum(s.share for s in segments), 1.0)
    frame = dataset.frame.with_columns(pl.Series("segment", labels))
    for segment in segments:
        members = frame.filter(pl.col("segment") == segment.id)
        assert members.height == segment.size
        for characteristic in segment.characteristics:
            name = characteristic.field
            column = frame.get_column(name)
            mean = members.get_column(name).mean()
            assert _centroid(segment, name) == pytest.approx(mean)
            assert characteristic.segment_value == pytest.approx(mean)
            assert characteristic.population_value == pytest.approx(column.mean())
            z = (mean - column.mean()) / column.std(ddof=0)
            assert characteristic.difference == pytest.approx(z) and characteristic.measure == "z"
        top = segment.distinguishing_features
        assert [abs(f.score) for f in top] == sorted((abs(f.score) for f in top), reverse=True)


def _plain_result(dataset: PolarsDataset, spec: SegmentationSpec) -> tuple[np.ndarray, SegmentationResult]:
    labels, result = fit_segments(dataset, spec, no_progress)
    _plain_python(result)
    return labels, result


def test_names_are_readable_and_distinct() -> None:
    rng = np.random.default_rng(3)
    group = np.repeat([0, 1, 2], 300)
    income = np.array([30_000.0, 90_000.0, 50_000.0])[group] + rng.normal(0, 3_000, 900)
    age = np.array([60.0, 28.0, 45.0])[group] + rng.normal(0, 2, 900)
    region = np.where(group == 2, "north", "south")
    dataset = PolarsDataset(pl.DataFrame({"income": income, "age": age, "region": region}))
    labels, result = fit_segments(dataset, SegmentationSpec(fields=("income", "age", "region")), no_progress)
    assert result.k == 3 and adjusted_rand_score(group, labels) > 0.95
    names = {s.name for s in result.segments}
    assert len(names) == 3
    assert "High income, young" in names
    assert all(name and name[0].isupper() for name in names)
    # The minority category that makes up a whole segment characterises it (lift 3), though the
    # majority category's shortfall in that segment is just as large in z.
    north = next(s for s in result.segments if s.name.startswith("Region: north"))
    region = next(c for c in north.characteristics if c.field == "region")
    assert region.category == "north" and region.difference == pytest.approx(3.0)
    region_feature = DistinguishingFeature("region", pytest.approx(math.sqrt(2)), "north")
    assert region_feature in north.distinguishing_features


def test_categoricals_booleans_and_nulls() -> None:
    rng = np.random.default_rng(11)
    rows = 1200
    group = rng.integers(0, 3, rows)
    spend = (group * 50.0 + rng.normal(0, 5, rows)).tolist()
    for i in range(0, rows, 10):  # 120 nulls
        spend[i] = None
    spend[5] = math.nan  # NaN and inf are imputed like nulls
    spend[7] = math.inf
    # 15 distinct cities: the top 4 are kept, the rest pooled as "other"; some nulls -> "missing".
    city = [f"city{int(rng.integers(0, 15))}" if i % 25 else None for i in range(rows)]
    frame = pl.DataFrame(
        {
            "spend": spend,
            "city": city,
            "vip": (group == 2).tolist(),
            "channel": np.where(group == 1, "web", "shop"),
        }
    )
    dataset = PolarsDataset(frame)
    spec = SegmentationSpec(fields=("spend", "city", "vip", "channel"), max_categories=4)
    labels, result = _plain_result(dataset, spec)
    assert [(i.field, i.count) for i in result.imputed] == [("spend", 122), ("city", 48)]
    assert result.fields_used == ("spend", "city", "vip", "channel")
    counts = frame.get_column("city").drop_nulls().value_counts()
    top_cities = counts.sort(["count", "city"], descending=[True, False]).get_column("city").to_list()
    for segment in result.segments:
        shares = _centroid(segment, "city")
        assert set(shares) - {"other", "missing"} == set(top_cities[:4])  # ties broken by name
        assert set(shares) >= {"other", "missing"} and len(shares) == 6
        assert math.isclose(sum(shares.values()), 1.0)
        assert set(_centroid(segment, "vip")) == {"true", "false"}
        by_field = {c.field: c for c in segment.characteristics}
        assert by_field["channel"].measure == "lift"
        assert by_field["channel"].difference == pytest.approx(
            by_field["channel"].segment_value / by_field["channel"].population_value
        )
    # The median-imputed spend: the centroid is the mean of what the model saw.
    finite = [v for v in spend if v is not None and math.isfinite(v)]
    imputed = np.array([v if v is not None and math.isfinite(v) else np.median(finite) for v in spend])
    for segment in result.segments:
        assert _centroid(segment, "spend") == pytest.approx(imputed[labels == segment.id].mean())


def test_a_category_called_other_is_not_merged_with_the_pooled_rest() -> None:
    # "other" is a real, frequent category here: the pooled rest (c, d, e) needs another label.
    values = ["other"] * 60 + ["a", "b", "c"] * 50 + ["d", "e"]
    frame = pl.DataFrame({"kind": values, "x": np.arange(len(values), dtype=float)})
    _, result = fit_segments(
        PolarsDataset(frame), SegmentationSpec(fields=("kind", "x"), max_categories=3), no_progress
    )
    assert set(_centroid(result.segments[0], "kind")) == {"other", "a", "b", "(other)"}


def test_constant_and_all_null_columns_are_dropped_with_a_warning() -> None:
    dataset, truth = _blobs()
    frame = dataset.frame.with_columns(
        pl.lit(5.0).alias("flat"),
        pl.lit(None, dtype=pl.Float64).alias("empty"),
        pl.lit("same").alias("label"),
    )
    spec = SegmentationSpec(fields=("f0", "flat", "f1", "empty", "label", "f2", "f3"))
    labels, result = fit_segments(PolarsDataset(frame), spec, no_progress)
    assert result.fields_used == ("f0", "f1", "f2", "f3")
    assert len(result.warnings) == 3
    for name in ("flat", "empty", "label"):
        assert any(f"'{name}' dropped" in w for w in result.warnings)
    assert result.k == 4 and adjusted_rand_score(truth, labels) > 0.9


def test_no_usable_field_is_insufficient_data() -> None:
    frame = pl.DataFrame({"flat": [1.0] * 10, "empty": pl.Series([None] * 10, dtype=pl.Float64)})
    with pytest.raises(InsufficientData, match="no usable field") as caught:
        fit_segments(PolarsDataset(frame), SegmentationSpec(), no_progress)
    assert len(caught.value.details) == 2


def test_too_few_distinct_rows() -> None:
    three = pl.DataFrame({"x": [1.0, 2.0, 3.0] * 20, "y": [1.0, 5.0, 1.0] * 20})
    labels, result = fit_segments(PolarsDataset(three), SegmentationSpec(), no_progress)
    assert [c.k for c in result.candidates] == [2]
    assert any("`max_clusters` lowered to 2" in w for w in result.warnings)
    assert len(set(labels.tolist())) == 2
    two = pl.DataFrame({"x": [1.0, 2.0] * 30})
    with pytest.raises(InsufficientData, match="2 distinct rows"):
        fit_segments(PolarsDataset(two), SegmentationSpec(), no_progress)


def test_the_engine_still_fails_cleanly_on_data_it_cannot_segment() -> None:
    # The request is checked at submission (tests/unit/test_segmentation_rules.py: a date/time field,
    # no rows); what reaches the engine unchecked still ends in a domain error, not a crash.
    dataset, _ = _blobs(rows=100)
    with pytest.raises(InsufficientData, match="no usable field"):
        SklearnSegmenter().segment(PolarsDataset(dataset.frame.head(0)), SegmentationSpec(), no_progress)


def test_nested_values_are_not_categories() -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "tags": [[1], [2], [1, 2], []]})
    with pytest.raises(ValidationFailed) as caught:
        fit_segments(PolarsDataset(frame), SegmentationSpec(fields=("x", "tags")), no_progress)
    assert caught.value.details[0]["field"] == "tags"


def test_segmenter_port() -> None:
    dataset, _ = _blobs(rows=600)
    segmenter = SklearnSegmenter()
    assert Segmenter in type(segmenter).__mro__
    assert (
        segmenter.segment(dataset, SegmentationSpec(), no_progress)
        == fit_segments(dataset, SegmentationSpec(), no_progress)[1]
    )


@pytest.mark.parametrize(
    "spec",
    [
        SegmentationSpec(),
        SegmentationSpec(fit_sample_size=1000),
        SegmentationSpec(algorithm="dbscan", dbscan_sample_size=1000),
    ],
)
def test_progress_is_monotonic_and_ends_at_one(spec: SegmentationSpec) -> None:
    dataset, _ = _blobs(rows=3000)
    reports: list[tuple[float, str]] = []
    fit_segments(dataset, spec, lambda fraction, message="": reports.append((fraction, message)))
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)
    if spec.algorithm == "kmeans":
        for k in range(2, 9):
            assert any(f"Fitted k={k}" in message for _, message in reports)
    else:
        assert any("Assigned 2000 of 2000 rows" in message for _, message in reports)


def test_silhouette_matches_scikit_learn() -> None:
    rng = np.random.default_rng(5)
    sample = rng.normal(size=(700, 3))
    random_labels = rng.integers(0, 5, 700)
    random_labels[3] = 9  # a singleton cluster scores 0
    blob_labels = (sample[:, 0] > 0).astype(np.int64) + 2 * (sample[:, 1] > 0)
    ours = silhouettes(sample, [random_labels, blob_labels], lambda *_: None)
    assert ours[0] == pytest.approx(silhouette_score(sample, random_labels), abs=1e-12)
    assert ours[1] == pytest.approx(silhouette_score(sample, blob_labels), abs=1e-12)
    # Undefined with a single cluster, or with every point its own cluster.
    single = silhouettes(sample[:10], [np.zeros(10, dtype=np.int64), np.arange(10)], lambda *_: None)
    assert single == [None, None]


def _with_outliers(seed: int = 2) -> tuple[PolarsDataset, np.ndarray, np.ndarray]:
    centres = [(-6.0, -6.0), (0.0, 6.0), (6.0, -4.0)]
    x, truth = make_blobs(n_samples=1500, centers=centres, cluster_std=0.6, random_state=seed)
    rng = np.random.default_rng(seed)
    far = rng.uniform(-15, 15, size=(200, 2))
    # Keep only points well away from every blob: those are the outliers to find.
    far = far[np.min(np.linalg.norm(far[:, None, :] - x[None, :, :], axis=2), axis=1) > 2.5][:15]
    assert len(far) == 15
    data = np.vstack([x, far])
    is_outlier = np.r_[np.zeros(len(x), bool), np.ones(len(far), bool)]
    frame = pl.DataFrame({"a": data[:, 0], "b": data[:, 1] * 3.0})
    return PolarsDataset(frame), np.r_[truth, np.full(len(far), -1)], is_outlier


def test_dbscan_reports_noise_as_an_outliers_segment() -> None:
    dataset, truth, is_outlier = _with_outliers()
    labels, result = _plain_result(dataset, SegmentationSpec(algorithm="dbscan"))
    assert result.algorithm == "dbscan" and result.k == 3 and result.candidates == ()
    assert isinstance(result.parameters, DbscanParameters)
    assert result.parameters.eps_estimated is True and result.parameters.eps > 0
    outliers = result.segments[-1]
    assert outliers.id == OUTLIERS_ID and outliers.name == OUTLIERS_NAME
    assert outliers.size == int((labels == OUTLIERS_ID).sum())
    assert (labels[is_outlier] == OUTLIERS_ID).mean() >= 0.9
    assert (labels[~is_outlier] == OUTLIERS_ID).mean() < 0.05
    clustered = ~is_outlier & (labels != OUTLIERS_ID)
    assert adjusted_rand_score(truth[clustered], labels[clustered]) > 0.95
    assert result.silhouette is not None and result.silhouette > 0.5
    assert [s.id for s in result.segments] == [0, 1, 2, OUTLIERS_ID]


def test_dbscan_on_a_sample_assigns_the_other_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, truth, is_outlier = _with_outliers(seed=4)
    spec = SegmentationSpec(algorithm="dbscan", dbscan_sample_size=1000)
    labels, result = fit_segments(dataset, spec, no_progress)
    assert result.parameters.fit_sample_size == 1000
    assert result.k == 3
    assert (labels[is_outlier] == OUTLIERS_ID).mean() >= 0.9
    clustered = ~is_outlier & (labels != OUTLIERS_ID)
    assert clustered.mean() > 0.95
    assert adjusted_rand_score(truth[clustered], labels[clustered]) > 0.95
    # Rows settled by the first pass over a few core points, then by all of them, end exactly where a
    # single search over all core points puts them.
    monkeypatch.setattr(dbscan, "FIRST_PASS_CORES", 20)
    two_pass_labels, two_pass = fit_segments(dataset, spec, no_progress)
    assert np.array_equal(two_pass_labels, labels) and two_pass == result


def test_dbscan_with_a_tiny_eps_finds_no_cluster() -> None:
    dataset, _, _ = _with_outliers()
    with pytest.raises(InsufficientData, match="no cluster"):
        fit_segments(dataset, SegmentationSpec(algorithm="dbscan", eps=1e-6, min_samples=5), no_progress)


def test_dbscan_memory_stays_bounded_with_a_huge_eps(monkeypatch: pytest.MonkeyPatch) -> None:
    dataset, _, _ = _with_outliers()
    monkeypatch.setattr(dbscan, "NEIGHBOUR_BUDGET", 1_000_000)
    labels, result = fit_segments(dataset, SegmentationSpec(algorithm="dbscan", eps=100.0), no_progress)
    # Every row neighbours every other: the sample shrinks to sqrt(budget) rows, one cluster remains.
    assert result.parameters.fit_sample_size == 1000
    assert any("to bound memory" in w for w in result.warnings)
    assert result.k == 1 and (labels == 0).all()
    assert any("single cluster" in w for w in result.warnings)
