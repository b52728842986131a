"""The segmentation request: its defaults and bounds, what the request and the data's schema alone
can be checked for, and the choice of k.

This module stays pure so that a bad request is refused with a 422 before any job exists. Errors
name spec fields (`min_clusters`); the presenters spell them as the request does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from domain.data import ColumnKind
from domain.errors import InsufficientData, ValidationFailed, field_error
from domain.specs import bound_problems, bounded

SegmentationAlgorithm = Literal["kmeans", "dbscan"]
ALGORITHMS: tuple[str, ...] = ("kmeans", "dbscan")

# Beyond ~50 segments nobody reads the profiles, and each extra k costs a full fit.
MAX_CLUSTERS_CAP = 50
# The silhouette is quadratic in its sample: 20,000 rows is ~4e8 distances, a few seconds; more is not
# worth the time and could starve the other jobs of a worker.
MAX_SILHOUETTE_SAMPLE = 20_000
MAX_CATEGORIES_CAP = 100
MAX_DBSCAN_MIN_SAMPLES = 100_000
# numpy's seeding would take up to 2**32 - 1, but the contract has always offered 0..2**31 - 1: the
# range callers know, so it is the spec's.
MAX_RANDOM_STATE = 2**31 - 1
# Below this many rows a sample saves nothing and its centres (or core points) are too few to trust.
MIN_ENGINE_SAMPLE = 1000


@dataclass(frozen=True)
class SegmentationSpec:
    """What to segment and how. The fields up to `max_categories` come from the request; the last two
    are engine knobs with measured defaults (see bench/segments.py) that the request does not expose.

    `fit_sample_size`: above this many rows the candidate k's are fitted on a seeded sample of this many
    rows, and the chosen k is then refitted on all rows (full K-Means started from the sample centres).
    It replaces a MiniBatchKMeans threshold: at 1M x 8 MiniBatchKMeans was measured 3-10x slower than
    this for the same inertia (see adapters/segmentation/kmeans.py).
    `dbscan_sample_size`: DBSCAN is fitted on at most this many rows; each other row joins the cluster
    of a core point within `eps` of it, else it is an outlier (linear in rows: ~12 s of CPU at 1M x 8).
    `eps` is in standardised units: numeric fields are z-scored and two different categories are 1 apart.
    """

    fields: tuple[str, ...] | None = None
    algorithm: SegmentationAlgorithm = "kmeans"
    min_clusters: int = bounded(2, minimum=2, maximum=MAX_CLUSTERS_CAP)
    max_clusters: int = bounded(8, minimum=2, maximum=MAX_CLUSTERS_CAP)
    random_state: int = bounded(42, minimum=0, maximum=MAX_RANDOM_STATE)
    eps: float | None = bounded(None, exclusive_minimum=0)
    # DBSCAN runs on a sample of `dbscan_sample_size` rows: a core point cannot need more.
    min_samples: int | None = bounded(None, minimum=1, maximum=MAX_DBSCAN_MIN_SAMPLES)
    silhouette_sample_size: int = bounded(10_000, minimum=100, maximum=MAX_SILHOUETTE_SAMPLE)
    max_categories: int = bounded(10, minimum=1, maximum=MAX_CATEGORIES_CAP)
    fit_sample_size: int = bounded(100_000, minimum=MIN_ENGINE_SAMPLE)
    dbscan_sample_size: int = bounded(10_000, minimum=MIN_ENGINE_SAMPLE)


# Spec fields the request does not expose.
ENGINE_FIELDS = frozenset({"fit_sample_size", "dbscan_sample_size"})


def selected_fields(spec: SegmentationSpec, schema: Mapping[str, ColumnKind]) -> tuple[str, ...]:
    """The fields the request asks for: the listed ones, or every numeric column in schema order."""
    if spec.fields is not None:
        return spec.fields
    return tuple(name for name, kind in schema.items() if kind is ColumnKind.NUMERIC)


def validate_segmentation_spec(
    spec: SegmentationSpec, schema: Mapping[str, ColumnKind], row_count: int
) -> None:
    """Reject what the request and the data's schema alone show to be wrong (a 422 before any job).

    Raises ValidationFailed with one detail per problem, or InsufficientData when the data is empty or
    has fewer rows than the smallest k needs.
    """
    problems: list[dict[str, Any]] = []
    if spec.algorithm not in ALGORITHMS:
        problems.append(field_error("algorithm", f"must be one of {', '.join(ALGORITHMS)}"))
    problems.extend(_field_problems(spec, schema))
    # The cluster range is checked for DBSCAN too: a 422 should not depend on the algorithm.
    problems.extend(bound_problems(spec))
    if spec.min_clusters > spec.max_clusters:
        problems.append(field_error("min_clusters", "must be <= `max_clusters`"))
    if problems:
        raise ValidationFailed("the segmentation request is invalid", problems)

    if row_count <= 0:
        raise InsufficientData("the data has no rows", [field_error("data", "no rows")])
    if spec.algorithm == "kmeans" and row_count <= spec.min_clusters:
        raise InsufficientData(
            f"{row_count} rows cannot form {spec.min_clusters} clusters; at least "
            f"{spec.min_clusters + 1} rows are needed",
            [field_error("data", f"{row_count} rows")],
        )


def _field_problems(spec: SegmentationSpec, schema: Mapping[str, ColumnKind]) -> list[dict[str, Any]]:
    if spec.fields is None:
        if not any(kind is ColumnKind.NUMERIC for kind in schema.values()):
            return [field_error("fields", "the data has no numeric field; list the fields to use")]
        return []
    if not spec.fields:
        return [field_error("fields", "list at least one field, or null for every numeric field")]
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, name in enumerate(spec.fields):
        # Bracketed, as the request's other item paths are (`data.columns[1]`).
        where = f"fields[{index}]"
        kind = schema.get(name)
        if kind is None:
            problems.append(field_error(where, f"unknown field '{name}'"))
        elif kind is ColumnKind.TEMPORAL:
            problems.append(field_error(where, f"field '{name}' is a date/time; segmentation cannot use it"))
        if name in seen:
            problems.append(field_error(where, f"field '{name}' is listed twice"))
        seen.add(name)
    return problems


def candidate_ks(spec: SegmentationSpec, distinct_rows: int) -> range:
    """The k's to try: min_clusters..max_clusters, capped at distinct rows - 1.

    The silhouette needs at least two clusters and fewer clusters than distinct points, so with no more
    distinct rows than min_clusters no candidate is valid: InsufficientData, a failed job, not a 422,
    because only the data reveals it.
    """
    top = min(spec.max_clusters, distinct_rows - 1)
    if top < spec.min_clusters:
        raise InsufficientData(
            f"the data has {distinct_rows} distinct rows (after encoding); {spec.min_clusters} clusters "
            f"need at least {spec.min_clusters + 1}",
            [field_error("min_clusters", f"at most {max(distinct_rows - 1, 0)} clusters are possible")],
        )
    return range(spec.min_clusters, top + 1)


def choose_k(candidates: Sequence[tuple[int, float | None]]) -> int:
    """The k with the best silhouette; ties go to the smaller k (fewer segments read better).

    When no candidate has a silhouette (each sample saw a single cluster) the smallest k is chosen.
    """
    scored = [(k, s) for k, s in candidates if s is not None]
    if not scored:
        return min(k for k, _ in candidates)
    best = max(s for _, s in scored)
    return min(k for k, s in scored if s == best)
