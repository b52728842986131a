"""DBSCAN on a bounded sample, the other rows placed as DBSCAN places border points.

DBSCAN is fitted on at most `dbscan_sample_size` seeded rows (its neighbourhood lists grow with rows x
neighbours); each other row joins the cluster of a core point of the sample lying within `eps` (which is
how DBSCAN itself places border points), else it is an outlier (see `_assign_to_cores`). `eps` when not
given is the knee of the sorted k-distance curve (k = min_samples) on the same sample; min_samples
defaults to 2 x encoded columns (within 4..50). When the neighbourhoods would hold more than
`NEIGHBOUR_BUDGET` pairs (a large eps), the sample shrinks so that memory stays bounded. Noise is the
segment id -1, "Outliers".
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.neighbors import KDTree, NearestNeighbors

from adapters.segmentation.fit import Fit, Labels, Matrix, Rows, sample_rows
from adapters.segmentation.silhouette import silhouettes
from domain.errors import InsufficientData, field_error
from domain.progress import ProgressReporter
from domain.segmentation import OUTLIERS_ID, DbscanParameters, SegmentationSpec

# DBSCAN keeps every neighbourhood in memory: 20M (index) pairs is ~160 MB.
NEIGHBOUR_BUDGET = 20_000_000
_PROBE_ROWS = 500
# Core points searched first when assigning rows: settles ~95% of clustered rows at ~1/3 of the cost.
FIRST_PASS_CORES = 2000
_ASSIGN_CHUNK_ROWS = 100_000


def fit_dbscan(data: Matrix, spec: SegmentationSpec, progress: ProgressReporter) -> Fit:
    """Raises InsufficientData when no row has `min_samples` neighbours within `eps`."""
    rows, width = data.shape
    rng = np.random.default_rng(spec.random_state)
    warnings: list[str] = []
    fit_rows = sample_rows(rng, rows, spec.dbscan_sample_size)
    min_samples = spec.min_samples if spec.min_samples is not None else min(max(2 * width, 4), 50)
    eps = spec.eps if spec.eps is not None else _estimate_eps(data[fit_rows], min_samples)
    progress(0.2, f"`eps`={eps:.4g}, `min_samples`={min_samples}")

    fit_rows = _bound_neighbourhoods(data, fit_rows, eps, rng, warnings)
    fit_data = data[fit_rows]
    model = DBSCAN(eps=eps, min_samples=min_samples).fit(fit_data)
    fit_labels = model.labels_.astype(np.int64)
    core = model.core_sample_indices_
    if len(core) == 0:
        raise InsufficientData(
            f"DBSCAN found no cluster: no row has {min_samples} neighbours within eps={eps:.4g}; "
            "raise `eps` or lower `min_samples`",
            [field_error("eps", f"{eps:.4g} is too small for this data")],
        )
    clusters = int(fit_labels.max()) + 1
    progress(0.5, f"DBSCAN found {clusters} clusters on {len(fit_rows)} rows")

    labels = np.full(rows, OUTLIERS_ID, dtype=np.int64)
    labels[fit_rows] = fit_labels
    rest = np.setdiff1d(np.arange(rows), fit_rows, assume_unique=True)
    if len(rest):
        _assign_to_cores(data, rest, fit_data[core], fit_labels[core], eps, labels, rng, progress)
    if clusters == 1:
        warnings.append(
            f"DBSCAN found a single cluster at eps={eps:.4g}: the data has no separate dense groups at "
            "that radius; a smaller eps or K-Means may split it"
        )

    silhouette = None
    clustered = np.flatnonzero(labels != OUTLIERS_ID)
    if clusters > 1:
        sil_rows = clustered[sample_rows(rng, len(clustered), spec.silhouette_sample_size)]
        # Outliers are no cluster: the silhouette is that of the clustered rows.
        silhouette = silhouettes(data[sil_rows], [labels[sil_rows]], lambda *_: None)[0]
    progress(1.0, "DBSCAN done")
    parameters = DbscanParameters(
        eps=float(eps),
        min_samples=int(min_samples),
        fit_sample_size=len(fit_rows),
        eps_estimated=spec.eps is None,
    )
    return Fit(labels, silhouette, (), parameters, tuple(warnings))


def _assign_to_cores(
    data: Matrix,
    rest: Rows,
    cores: Matrix,
    core_labels: Labels,
    eps: float,
    labels: Labels,
    rng: np.random.Generator,
    progress: ProgressReporter,
) -> None:
    """Give each row of `rest` the cluster of a core point within eps, else leave it an outlier.

    A k-d tree query costs ~40 us a row against 20,000 core points in 8 dimensions (35 s at 1M rows) and
    holds the GIL, so threads do not help. Most rows lie inside a cluster, within eps of one of a few
    thousand core points: those are settled against a seeded subset of the cores (~3x faster), and only
    the rest are searched against all of them. Any core point within eps is a valid choice: DBSCAN
    itself gives a border point reachable from two clusters to whichever reaches it first.
    """
    subset = sample_rows(rng, len(cores), FIRST_PASS_CORES)
    passes = [(KDTree(cores[subset]), core_labels[subset])]
    if len(subset) < len(cores):
        passes.append((KDTree(cores), core_labels))
    for start in range(0, len(rest), _ASSIGN_CHUNK_ROWS):
        pending = rest[start : start + _ASSIGN_CHUNK_ROWS]
        for tree, tree_labels in passes:
            dist, idx = tree.query(data[pending], k=1)
            near = dist[:, 0] <= eps
            labels[pending[near]] = tree_labels[idx[near, 0]]
            pending = pending[~near]
            if not len(pending):
                break
        done = min(len(rest), start + _ASSIGN_CHUNK_ROWS)
        progress(0.5 + 0.4 * done / len(rest), f"Assigned {done} of {len(rest)} rows to clusters")


def _estimate_eps(sample: Matrix, min_samples: int) -> float:
    """The knee of the sorted distances to the min_samples-th neighbour (the point itself included, as
    DBSCAN counts it): where the curve is farthest below the chord joining its ends."""
    neighbours = min(min_samples, len(sample))
    dist, _ = NearestNeighbors(n_neighbors=neighbours).fit(sample).kneighbors(sample)
    curve = np.sort(dist[:, -1])
    low, high = float(curve[0]), float(curve[-1])
    if high <= low:
        knee = low
    else:
        x = np.linspace(0.0, 1.0, len(curve))
        knee = float(curve[int(np.argmax(x - (curve - low) / (high - low)))])
    if knee > 0:
        return knee
    # Duplicated rows give zero distances; any positive radius then groups the duplicates.
    positive = curve[curve > 0]
    return float(positive[0]) if len(positive) else 1e-9


def _bound_neighbourhoods(
    data: Matrix,
    fit_rows: Rows,
    eps: float,
    rng: np.random.Generator,
    warnings: list[str],
) -> Rows:
    """Shrink the DBSCAN sample when its neighbourhood lists would exceed the memory budget."""
    fit_data = data[fit_rows]
    probe = fit_data[sample_rows(rng, len(fit_rows), _PROBE_ROWS)]
    found = KDTree(fit_data).query_radius(probe, r=eps, count_only=True)
    share = float(np.mean(found)) / len(fit_rows)
    if share * len(fit_rows) ** 2 <= NEIGHBOUR_BUDGET:
        return fit_rows
    size = max(1000, int(math.sqrt(NEIGHBOUR_BUDGET / share)))
    if size >= len(fit_rows):
        return fit_rows
    warnings.append(
        f"eps={eps:.4g} puts ~{share:.0%} of the rows in each neighbourhood; DBSCAN was fitted on "
        f"{size} rows instead of {len(fit_rows)} to bound memory"
    )
    return np.sort(rng.choice(fit_rows, size=size, replace=False))
