"""Customer segmentation: the command, what the request alone can be checked for, and the naming rules.

The computation itself lives in an adapter (scikit-learn); this module stays pure so the HTTP layer can
reject a bad request with a 422 before any job exists, and so the naming rules can be tested alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from domain.data import ColumnKind
from domain.errors import InsufficientData, ValidationFailed, field_error

SegmentationAlgorithm = Literal["kmeans", "dbscan"]
ALGORITHMS: tuple[str, ...] = ("kmeans", "dbscan")

# Beyond ~50 segments nobody reads the profiles, and each extra k costs a full fit.
MAX_CLUSTERS_CAP = 50
# The silhouette is quadratic in its sample: 20,000 rows is ~4e8 distances, a few seconds; more is not
# worth the time and could starve the other jobs of a worker.
MAX_SILHOUETTE_SAMPLE = 20_000
MAX_CATEGORIES_CAP = 100
# numpy's seeding accepts 0 <= seed < 2**32; anything else would fail deep inside the fit.
MAX_RANDOM_STATE = 2**32 - 1

OUTLIERS_ID = -1
OUTLIERS_NAME = "Outliers"


@dataclass(frozen=True)
class SegmentationSpec:
    """What to segment and how. The first six fields come from the request; the rest are engine knobs
    with measured defaults (see bench/segments.py) that the HTTP layer does not expose.

    `fit_sample_size`: above this many rows the candidate k's are fitted on a seeded sample of this many
    rows, and the chosen k is then refitted on all rows (full K-Means started from the sample centres).
    It replaces a MiniBatchKMeans threshold: at 1M x 8 MiniBatchKMeans was measured 3-10x slower than
    this for the same inertia (see the adapter's module docstring).
    `dbscan_sample_size`: DBSCAN is fitted on at most this many rows; each other row joins the cluster
    of a core point within `eps` of it, else it is an outlier (linear in rows: ~12 s of CPU at 1M x 8).
    `eps` is in standardised units: numeric fields are z-scored and two different categories are 1 apart.
    """

    fields: tuple[str, ...] | None = None
    algorithm: SegmentationAlgorithm = "kmeans"
    min_clusters: int = 2
    max_clusters: int = 8
    random_state: int = 42
    eps: float | None = None
    min_samples: int | None = None
    silhouette_sample_size: int = 10_000
    max_categories: int = 10
    fit_sample_size: int = 100_000
    dbscan_sample_size: int = 10_000


def selected_fields(spec: SegmentationSpec, schema: Mapping[str, ColumnKind]) -> tuple[str, ...]:
    """The fields the request asks for: the listed ones, or every numeric column in schema order."""
    if spec.fields is not None:
        return spec.fields
    return tuple(name for name, kind in schema.items() if kind is ColumnKind.NUMERIC)


def validate_segmentation_spec(
    spec: SegmentationSpec, schema: Mapping[str, ColumnKind], row_count: int
) -> None:
    """Reject what the request alone shows to be wrong (a 422 before any job exists).

    Raises ValidationFailed with one detail per problem (field names as the request spells them), or
    InsufficientData when the data is empty or has fewer rows than the smallest k needs.
    """
    problems: list[dict[str, Any]] = []
    if spec.algorithm not in ALGORITHMS:
        problems.append(field_error("algorithm", f"must be one of {', '.join(ALGORITHMS)}"))
    problems.extend(_field_problems(spec, schema))
    # Checked for DBSCAN too: they are request fields, and a 422 should not depend on the algorithm.
    problems.extend(_cluster_range_problems(spec))
    if spec.eps is not None and not (math.isfinite(spec.eps) and spec.eps > 0):
        problems.append(field_error("eps", "must be a finite number > 0"))
    if spec.min_samples is not None and spec.min_samples < 1:
        problems.append(field_error("minSamples", "must be >= 1"))
    if not 0 <= spec.random_state <= MAX_RANDOM_STATE:
        problems.append(field_error("randomState", f"must be between 0 and {MAX_RANDOM_STATE}"))
    if not 100 <= spec.silhouette_sample_size <= MAX_SILHOUETTE_SAMPLE:
        problems.append(
            field_error("silhouetteSampleSize", f"must be between 100 and {MAX_SILHOUETTE_SAMPLE}")
        )
    if not 1 <= spec.max_categories <= MAX_CATEGORIES_CAP:
        problems.append(field_error("maxCategories", f"must be between 1 and {MAX_CATEGORIES_CAP}"))
    if spec.fit_sample_size < 1000:
        problems.append(field_error("fitSampleSize", "must be >= 1000"))
    if spec.dbscan_sample_size < 1000:
        problems.append(field_error("dbscanSampleSize", "must be >= 1000"))
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


def _cluster_range_problems(spec: SegmentationSpec) -> list[dict[str, Any]]:
    problems: list[dict[str, Any]] = []
    if spec.min_clusters < 2:
        problems.append(field_error("minClusters", "must be >= 2"))
    if spec.max_clusters > MAX_CLUSTERS_CAP:
        problems.append(field_error("maxClusters", f"must be <= {MAX_CLUSTERS_CAP}"))
    if spec.min_clusters > spec.max_clusters:
        problems.append(field_error("minClusters", "must be <= maxClusters"))
    return problems


def candidate_ks(spec: SegmentationSpec, distinct_rows: int) -> range:
    """The k's to try: minClusters..maxClusters, capped at distinct rows - 1.

    The silhouette needs at least two clusters and fewer clusters than distinct points, so with no more
    distinct rows than minClusters no candidate is valid: InsufficientData, a failed job, not a 422,
    because only the data reveals it.
    """
    top = min(spec.max_clusters, distinct_rows - 1)
    if top < spec.min_clusters:
        raise InsufficientData(
            f"the data has {distinct_rows} distinct rows (after encoding); {spec.min_clusters} clusters "
            f"need at least {spec.min_clusters + 1}",
            [field_error("minClusters", f"at most {max(distinct_rows - 1, 0)} clusters are possible")],
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


# --- naming -------------------------------------------------------------------------------------------

# A difference under half a standard deviation is not what sets a segment apart.
NAME_MIN_SCORE = 0.5
# From 1.5 standard deviations a plain "high" undersells the difference.
NAME_STRONG_SCORE = 1.5
# A category names a segment only when most of the segment has it.
NAME_MIN_CATEGORY_SHARE = 0.5
NAME_DEFAULT_PARTS = 2
AVERAGE_NAME = "Average profile"

# Field words whose plain "low/high" reads badly: (very low, low, high, very high).
_LEXICON: Mapping[str, tuple[str, str, str, str]] = {
    "age": ("very young", "young", "older", "much older"),
}


@dataclass(frozen=True)
class FeatureSignal:
    """How one field sets a segment apart from the population.

    Numeric field: `score` is the z-score of the segment mean ((segment mean - population mean) /
    population std), `category` is None. Categorical field: `score` is the same z-score for the
    indicator of `category`, and `segment_share` the share of the segment with that category.
    """

    field: str
    score: float
    category: str | None = None
    segment_share: float | None = None


def humanize(field: str) -> str:
    """`total_spend`, `totalSpend`, `Total-Spend` -> `total spend`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", field)
    return " ".join(re.sub(r"[_\-.]+", " ", spaced).split()).lower()


def describe_signal(signal: FeatureSignal) -> str | None:
    """The words for one signal ("high income", "young", "region: north"), or None when too weak."""
    if signal.category is not None:
        share = signal.segment_share if signal.segment_share is not None else 0.0
        # Under-represented categories are not named: "not north" says little about who is there.
        if signal.score < NAME_MIN_SCORE or share < NAME_MIN_CATEGORY_SHARE:
            return None
        return f"{humanize(signal.field)}: {signal.category}"
    if abs(signal.score) < NAME_MIN_SCORE:
        return None
    word = humanize(signal.field)
    strong = abs(signal.score) >= NAME_STRONG_SCORE
    lexicon = _LEXICON.get(word)
    if lexicon is not None:
        very_low, low, high, very_high = lexicon
        if signal.score < 0:
            return very_low if strong else low
        return very_high if strong else high
    level = ("very " if strong else "") + ("low" if signal.score < 0 else "high")
    return f"{level} {word}"


def segment_name(signals: Sequence[FeatureSignal], max_parts: int = NAME_DEFAULT_PARTS) -> str:
    """A readable label from the strongest signals, e.g. "High income, young"."""
    ranked = sorted(signals, key=lambda s: (-abs(s.score), s.field, s.category or ""))
    parts: list[str] = []
    for signal in ranked:
        words = describe_signal(signal)
        if words is not None and words not in parts:
            parts.append(words)
        if len(parts) == max_parts:
            break
    if not parts:
        return AVERAGE_NAME
    name = ", ".join(parts)
    return name[0].upper() + name[1:]


def name_segments(
    profiles: Sequence[Sequence[FeatureSignal]], max_parts: int = NAME_DEFAULT_PARTS
) -> list[str]:
    """One distinct name per segment: segments sharing a name get more signals, then a number."""
    names = [segment_name(signals, max_parts) for signals in profiles]
    most_signals = max((len(signals) for signals in profiles), default=0)
    for parts in range(max_parts + 1, most_signals + 1):
        clashing = {name for name in names if names.count(name) > 1}
        if not clashing:
            break
        names = [
            segment_name(signals, parts) if name in clashing else name
            for name, signals in zip(names, profiles, strict=True)
        ]
    distinct: list[str] = []
    for name in names:
        candidate, number = name, 2
        while candidate in distinct:
            candidate, number = f"{name} ({number})", number + 1
        distinct.append(candidate)
    return distinct
