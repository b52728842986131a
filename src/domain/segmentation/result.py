"""What a segmentation finds, as typed values: the k's tried, each segment's profile, and how the
engine ran. Plain Python numbers only (the adapter converts), so a presenter writes them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from domain.segmentation.spec import SegmentationAlgorithm

OUTLIERS_ID = -1
OUTLIERS_NAME = "Outliers"

# `z`: difference in population standard deviations; `lift`: segment share / population share.
Measure = Literal["z", "lift"]


@dataclass(frozen=True)
class Candidate:
    """One k that K-Means tried; the silhouette is measured on a seeded sample (None: undefined)."""

    k: int
    silhouette: float | None
    inertia: float


@dataclass(frozen=True)
class NumericCentroid:
    """The segment mean of a numeric field, in the field's units (imputed values included)."""

    field: str
    mean: float


@dataclass(frozen=True)
class CategoryShare:
    category: str
    share: float


@dataclass(frozen=True)
class CategoricalCentroid:
    """The share of each category in the segment, in the encoding's order."""

    field: str
    shares: tuple[CategoryShare, ...]


Centroid = NumericCentroid | CategoricalCentroid


@dataclass(frozen=True)
class Characteristic:
    """Segment against population for one field. Numeric: the means, and their difference as a z.
    Categorical: the shares of the most over-represented `category`, and its lift."""

    field: str
    segment_value: float
    population_value: float
    difference: float
    measure: Measure
    category: str | None = None


@dataclass(frozen=True)
class DistinguishingFeature:
    """A field ranked by how far the segment stands from the population (|score|, a z); for a
    categorical field, the z of one category's indicator."""

    field: str
    score: float
    category: str | None = None


@dataclass(frozen=True)
class Segment:
    id: int  # OUTLIERS_ID for DBSCAN's noise
    name: str
    size: int
    share: float
    centroid: tuple[Centroid, ...]  # in the order of the result's fields_used
    characteristics: tuple[Characteristic, ...]  # likewise
    distinguishing_features: tuple[DistinguishingFeature, ...]


@dataclass(frozen=True)
class KMeansParameters:
    """How the K-Means search ran: rows the candidates were fitted on, rows of the silhouette sample,
    and k-means++ starts per fit."""

    fit_sample_size: int
    silhouette_sample_size: int
    n_init: int


@dataclass(frozen=True)
class DbscanParameters:
    """How DBSCAN ran: its radius (estimated or given), core-point size, and the rows it was fitted on."""

    eps: float
    min_samples: int
    fit_sample_size: int
    eps_estimated: bool


@dataclass(frozen=True)
class Imputation:
    """Missing (or non-finite) values replaced in one field."""

    field: str
    count: int


@dataclass(frozen=True)
class SegmentationResult:
    """`k` counts segments, the outliers not included. `silhouette` is the chosen candidate's (K-Means)
    or that of the clustered rows (DBSCAN); None when undefined. `candidates` is empty for DBSCAN.
    Warnings may name spec fields in backticks (`max_clusters`)."""

    algorithm: SegmentationAlgorithm
    k: int
    silhouette: float | None
    row_count: int
    fields_used: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    segments: tuple[Segment, ...]
    imputed: tuple[Imputation, ...]
    warnings: tuple[str, ...]
    parameters: KMeansParameters | DbscanParameters
