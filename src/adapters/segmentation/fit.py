"""What the K-Means and DBSCAN fits share: the array types, seeded row samples, and a fit's outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from domain.segmentation import Candidate, DbscanParameters, KMeansParameters

Labels = np.ndarray[Any, np.dtype[np.int64]]
Rows = np.ndarray[Any, np.dtype[np.int64]]  # row indices, ascending
Matrix = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class Fit:
    labels: Labels  # per row, before renumbering; OUTLIERS_ID for DBSCAN's noise
    silhouette: float | None
    candidates: tuple[Candidate, ...]
    parameters: KMeansParameters | DbscanParameters
    warnings: tuple[str, ...]


def sample_rows(rng: np.random.Generator, rows: int, size: int) -> Rows:
    """At most `size` of `rows` row indices, drawn with `rng` (every row when there are no more)."""
    if rows <= size:
        return np.arange(rows)
    return np.sort(rng.choice(rows, size=size, replace=False))
