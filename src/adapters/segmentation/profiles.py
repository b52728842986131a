"""Segment profiles: a fit's labels turned into the typed result, segments numbered by size, each
with its centroid, its characteristics against the population, and its name.

Segment values are computed on the data the model saw (imputed), in original units: a numeric centroid
is the segment mean, a categorical centroid the share of each category in the segment. Characteristics
compare segment and population per field: numeric by z-score (difference in population standard
deviations), categorical by the lift (segment share / population share) of its most over-represented
category. Distinguishing features rank fields by |z| (for a categorical field, the z of that
category's indicator: (segment share - population share) / sqrt(p (1 - p))).

numpy stops here: every number of the result is a Python int or float.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adapters.segmentation.encoding import Encoded, original_units
from adapters.segmentation.fit import Fit, Labels
from domain.segmentation import (
    OUTLIERS_ID,
    OUTLIERS_NAME,
    CategoricalCentroid,
    CategoryShare,
    Centroid,
    Characteristic,
    DistinguishingFeature,
    FeatureSignal,
    Imputation,
    NumericCentroid,
    Segment,
    SegmentationResult,
    SegmentationSpec,
    name_segments,
)

DISTINGUISHING_TOP = 5


def build_result(encoded: Encoded, spec: SegmentationSpec, fit: Fit) -> tuple[Labels, SegmentationResult]:
    """Each row's segment id (as in the result; OUTLIERS_ID for noise) and the result."""
    rows = encoded.matrix.shape[0]
    raw_labels = fit.labels
    clusters = sorted(int(c) for c in np.unique(raw_labels) if c != OUTLIERS_ID)
    sizes = {c: int(np.count_nonzero(raw_labels == c)) for c in clusters}
    # Ids follow size (largest first; ties by fit order) so that the same data always reads the same.
    order = sorted(clusters, key=lambda c: (-sizes[c], c))
    remap = np.full(max(clusters, default=0) + 2, OUTLIERS_ID, dtype=np.int64)
    for new, old in enumerate(order):
        remap[old] = new
    labels = remap[raw_labels]  # -1 indexes the last entry, which stays OUTLIERS_ID
    ids = list(range(len(order))) + ([OUTLIERS_ID] if (labels == OUTLIERS_ID).any() else [])

    profiles = _profiles(encoded, labels, ids)
    imputed = tuple(Imputation(name, count) for name, count in encoded.imputed.items())
    result = result_of(
        profiles, spec, fit, int(rows), tuple(encoded.fields), imputed, tuple(encoded.warnings)
    )
    return labels, result


def result_of(
    profiles: list[_Profile],
    spec: SegmentationSpec,
    fit: Fit,
    rows: int,
    fields: tuple[str, ...],
    imputed: tuple[Imputation, ...],
    warnings: tuple[str, ...],
) -> SegmentationResult:
    """The typed result of profiled segments (ids by size, OUTLIERS_ID last)."""
    names = name_segments([p.signals for p in profiles if p.id != OUTLIERS_ID])
    segments = tuple(
        profile.segment(OUTLIERS_NAME if profile.id == OUTLIERS_ID else names[profile.id], rows)
        for profile in profiles
    )
    return SegmentationResult(
        algorithm=spec.algorithm,
        k=sum(1 for p in profiles if p.id != OUTLIERS_ID),
        silhouette=fit.silhouette,
        row_count=rows,
        fields_used=fields,
        candidates=fit.candidates,
        segments=segments,
        imputed=imputed,
        warnings=(*warnings, *fit.warnings),
        parameters=fit.parameters,
    )


@dataclass(frozen=True)
class _Profile:
    id: int
    size: int
    centroid: tuple[Centroid, ...]
    characteristics: tuple[Characteristic, ...]
    signals: tuple[FeatureSignal, ...]

    def segment(self, name: str, rows: int) -> Segment:
        ranked = sorted(self.signals, key=lambda s: (-abs(s.score), s.field))[:DISTINGUISHING_TOP]
        features = tuple(DistinguishingFeature(s.field, s.score, s.category) for s in ranked)
        return Segment(
            id=self.id,
            name=name,
            size=self.size,
            share=self.size / rows,
            centroid=self.centroid,
            characteristics=self.characteristics,
            distinguishing_features=features,
        )


def _profiles(encoded: Encoded, labels: Labels, ids: Sequence[int]) -> list[_Profile]:
    slots = len(ids)
    # Outliers (-1) go to the last slot so one bincount covers every segment.
    slot = np.where(labels == OUTLIERS_ID, slots - 1, labels)
    sizes = np.bincount(slot, minlength=slots).astype(np.float64)
    # Means of the scaled values: a sum of raw values near 1e308 would overflow (encoding.py).
    numeric_means = [
        np.bincount(slot, weights=encoded.scaled[:, j], minlength=slots) / sizes
        for j in range(len(encoded.numeric))
    ]
    counts = []
    for cat in encoded.categorical:
        width = len(cat.categories)
        counts.append(np.bincount(slot * width + cat.codes, minlength=slots * width).reshape(slots, width))
    return profiles_from_sums(encoded, ids, sizes, numeric_means, counts)


def profiles_from_sums(
    encoded: Encoded,
    ids: Sequence[int],
    sizes: np.ndarray,
    numeric_means: Sequence[np.ndarray],
    category_counts: Sequence[np.ndarray],
) -> list[_Profile]:
    """Profiles from per-segment sums (in `ids` order): what `_profiles` counts from the rows, and
    what a cluster adds up from its parts. Reads only the encoding of `encoded`, not its rows."""
    rows = float(sizes.sum())
    shares = [(counts / sizes[:, None], counts.sum(axis=0) / rows) for counts in category_counts]
    profiles = []
    for position, segment_id in enumerate(ids):
        centroid: dict[str, Centroid] = {}
        characteristics: dict[str, Characteristic] = {}
        signals: list[FeatureSignal] = []
        for j, name in enumerate(encoded.numeric):
            scaled_value = float(numeric_means[j][position])
            z = (scaled_value - float(encoded.mean[j])) / float(encoded.std[j])
            exponent = int(encoded.exponents[j])
            value = original_units(scaled_value, exponent)
            population_mean = original_units(float(encoded.mean[j]), exponent)
            centroid[name] = NumericCentroid(name, value)
            characteristics[name] = Characteristic(name, value, population_mean, z, "z")
            signals.append(FeatureSignal(name, z))
        for cat, (segment_share, population) in zip(encoded.categorical, shares, strict=True):
            here = segment_share[position]
            centroid[cat.name] = CategoricalCentroid(
                cat.name, tuple(CategoryShare(c, float(here[i])) for i, c in enumerate(cat.categories))
            )
            zs = (here - population) / np.sqrt(population * (1.0 - population))
            # The most over-represented category says who is in the segment; an under-represented one
            # ("few from the north") says little. Ties go to the first, most frequent, category.
            top = int(np.argmax(zs))
            category = cat.categories[top]
            characteristics[cat.name] = Characteristic(
                cat.name,
                float(here[top]),
                float(population[top]),
                float(here[top] / population[top]),
                "lift",
                category,
            )
            signals.append(FeatureSignal(cat.name, float(zs[top]), category, float(here[top])))
        profiles.append(
            _Profile(
                segment_id,
                int(sizes[position]),
                tuple(centroid[name] for name in encoded.fields),
                tuple(characteristics[name] for name in encoded.fields),
                tuple(signals),
            )
        )
    return profiles
