"""Customer segmentation with scikit-learn (K-Means or DBSCAN) on a polars frame: the Segmenter port.

Encoding. Numeric fields are z-scored; categorical and boolean fields are one-hot encoded on their
`max_categories` most frequent values (ties by value), the rest pooled as "other". The indicators are
1/sqrt(2) rather than 1, so that two different categories are at distance 1, as two values one standard
deviation apart in a numeric field (the k-prototypes weighting, with gamma = the numeric spread): with
plain 0/1 a mismatch counts double, and a noisy categorical field splits real clusters. Nulls (and
NaN/inf) are imputed, numeric with the median and categorical as the category "missing", and counted in
`imputed`. A field that is all null or constant is dropped with a warning.

K-Means. Every k in minClusters..maxClusters (capped at distinct rows - 1) is fitted (k-means++, Lloyd)
and scored by the silhouette on one seeded sample of at most `silhouette_sample_size` rows, the same
rows for every k; the best silhouette wins (ties: the smaller k). The sample's distance matrix is
computed once, in chunks, and shared by all k's: the full silhouette is quadratic in rows. The reported
`silhouette` is the chosen candidate's.
Above `fit_sample_size` rows the candidates are fitted on a seeded sample of that many rows, their
inertia is measured on all rows, and the chosen k is refitted on all rows with full K-Means started from
the sample centres (it converges in 2-3 passes). Measured at 1M x 8 on 2 cores (scikit-learn 1.9):
full-data K-Means for k=2..8 took 17 s, MiniBatchKMeans 50-90 s (batch 8192 or 65536: many small
OpenMP steps plus a full labelling pass), and even as the final fit from the sample centres it took
2-4 s against ~1 s for full K-Means, at the same inertia; the sample-then-refit path takes ~4 s for
all candidates with inertia within 0.01% of the full fits. MiniBatchKMeans is therefore not used.

DBSCAN. Fitted on at most `dbscan_sample_size` seeded rows (its neighbourhood lists grow with rows x
neighbours); each other row joins the cluster of a core point of the sample lying within `eps` (which is
how DBSCAN itself places border points), else it is an outlier (see `_assign_to_cores`). `eps` when not
given is the knee of the sorted k-distance curve (k = minSamples) on the same sample; minSamples
defaults to 2 x encoded columns (within 4..50). When the neighbourhoods would hold more than
`_DBSCAN_NEIGHBOUR_BUDGET` pairs (a large eps), the sample shrinks so that memory stays bounded. Noise is
the segment id -1, "Outliers".

Profiles. Segment values are computed on the data the model saw (imputed), in original units: a numeric
centroid is the segment mean, a categorical centroid the share of each category in the segment.
`characteristics` compare segment and population per field: numeric by z-score (difference in population
standard deviations), categorical by the lift (segment share / population share) of its most
over-represented category. `distinguishingFeatures` rank fields by |z| (for a categorical field, the z of
that category's indicator: (segment share - population share) / sqrt(p (1 - p))).

Threads: scikit-learn and the BLAS use the OpenMP/BLAS thread counts the worker sets; nothing is
overridden here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from sklearn.cluster import DBSCAN, KMeans
from sklearn.neighbors import KDTree, NearestNeighbors

from adapters.frames import FrameDataset
from application.ports import Segmenter
from domain.data import ColumnKind
from domain.errors import InsufficientData, ValidationFailed, field_error
from domain.progress import ProgressReporter, StageProgress
from domain.segmentation import (
    OUTLIERS_ID,
    OUTLIERS_NAME,
    FeatureSignal,
    SegmentationSpec,
    candidate_ks,
    choose_k,
    name_segments,
    selected_fields,
    validate_segmentation_spec,
)

OTHER = "other"
MISSING = "missing"
DISTINGUISHING_TOP = 5
# k-means++ with a single start is sklearn's default; on small fit sets three starts cost little and
# make a poor local optimum (two blobs merged) much less likely to mislead the choice of k.
_SMALL_FIT_ROWS = 20_000
_SMALL_FIT_N_INIT = 3
# Bytes of one distance-matrix chunk in the silhouette (float64): bounded whatever the sample size, and
# small enough that its several passes stay in cache (64 MB chunks measured ~15% slower than 16 MB,
# 1 MB chunks slower again: too many small BLAS calls).
_SILHOUETTE_CHUNK_BYTES = 16 * 2**20
_ASSIGN_CHUNK_ROWS = 100_000
_INDICATOR = 1.0 / math.sqrt(2.0)  # a category mismatch then weighs one numeric standard deviation
# DBSCAN keeps every neighbourhood in memory: 20M (index) pairs is ~160 MB.
_DBSCAN_NEIGHBOUR_BUDGET = 20_000_000
_DBSCAN_PROBE_ROWS = 500
# Core points searched first when assigning rows: settles ~95% of clustered rows at ~1/3 of the cost.
_DBSCAN_FIRST_PASS_CORES = 2000

Labels = np.ndarray[Any, np.dtype[np.int64]]
Matrix = np.ndarray[Any, np.dtype[np.float64]]


class SklearnSegmenter(Segmenter[pl.DataFrame]):
    def segment(
        self, dataset: FrameDataset, spec: SegmentationSpec, progress: ProgressReporter
    ) -> dict[str, Any]:
        _, result = fit_segments(dataset, spec, progress)
        return result


def fit_segments(
    dataset: FrameDataset, spec: SegmentationSpec, progress: ProgressReporter
) -> tuple[Labels, dict[str, Any]]:
    """Segment the rows; return each row's segment id (as in the result; -1 = outlier) and the result."""
    validate_segmentation_spec(spec, dataset.schema, dataset.row_count)
    progress(0.0, "Preparing the data")
    encoded = _encode(dataset, spec)
    progress(0.05, f"Encoded {len(encoded.fields)} fields into {encoded.matrix.shape[1]} columns")
    if spec.algorithm == "dbscan":
        fit = _fit_dbscan(encoded, spec, StageProgress(progress, 0.05, 0.9))
    else:
        fit = _fit_kmeans(encoded, spec, StageProgress(progress, 0.05, 0.9))
    labels, result = _build_result(encoded, spec, fit)
    progress(1.0, f"Done: {result['k']} segments")
    return labels, result


# --- encoding -----------------------------------------------------------------------------------------


@dataclass
class _Categorical:
    name: str
    categories: list[str]
    codes: np.ndarray[Any, np.dtype[np.int64]]


@dataclass
class _Encoded:
    fields: list[str]
    numeric: list[str]
    raw: Matrix  # (rows, numeric fields), imputed, original units
    mean: Matrix
    std: Matrix
    categorical: list[_Categorical]
    matrix: Matrix  # (rows, model columns): z-scores then category indicators
    imputed: dict[str, int]
    warnings: list[str]


def _encode(dataset: FrameDataset, spec: SegmentationSpec) -> _Encoded:
    frame = dataset.frame
    schema = dataset.schema
    rows = frame.height
    numeric: list[str] = []
    columns: list[Matrix] = []
    categorical: list[_Categorical] = []
    imputed: dict[str, int] = {}
    warnings: list[str] = []
    for name in selected_fields(spec, schema):
        if schema[name] is ColumnKind.NUMERIC:
            values = frame.get_column(name).cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
            # NaN and inf are as unusable as nulls for a distance, so they are imputed alike.
            missing = ~np.isfinite(values)
            count = int(missing.sum())
            if count == rows:
                warnings.append(f"field '{name}' dropped: every value is null")
                continue
            if count:
                values[missing] = float(np.median(values[~missing]))
            if float(values.min()) == float(values.max()):
                warnings.append(f"field '{name}' dropped: every value is {_number(values[0])}")
                continue
            numeric.append(name)
            columns.append(values)
        else:
            encoded = _encode_categorical(frame.get_column(name), spec.max_categories)
            count = int(frame.get_column(name).null_count())
            if len(encoded.categories) < 2:
                what = "null" if count == rows else f"'{encoded.categories[0]}'"
                warnings.append(f"field '{name}' dropped: every value is {what}")
                continue
            categorical.append(encoded)
        if count:
            imputed[name] = count
    if not numeric and not categorical:
        raise InsufficientData(
            "no usable field: every selected field is constant or entirely null",
            [field_error("fields", message) for message in warnings],
        )

    # Column-major: every later use (statistics, profiles) reads one field at a time.
    raw = np.empty((rows, len(columns)), order="F")
    for j, values in enumerate(columns):
        raw[:, j] = values
    del columns
    mean = raw.mean(axis=0)
    std = raw.std(axis=0)
    width = len(numeric) + sum(len(c.categories) for c in categorical)
    matrix = np.zeros((rows, width))
    matrix[:, : len(numeric)] = (raw - mean) / std
    offset = len(numeric)
    for cat in categorical:
        matrix[np.arange(rows), offset + cat.codes] = _INDICATOR
        offset += len(cat.categories)
    kept = set(numeric) | {c.name for c in categorical}
    fields = [name for name in selected_fields(spec, schema) if name in kept]
    return _Encoded(fields, numeric, raw, mean, std, categorical, matrix, imputed, warnings)


def _encode_categorical(series: pl.Series, max_categories: int) -> _Categorical:
    try:
        # Renamed: a field called like value_counts' count column would clash with it.
        text = series.cast(pl.String).alias("value")
    except pl.exceptions.PolarsError as error:
        # Nested values (lists, structs) have no category to one-hot.
        raise ValidationFailed(
            f"field '{series.name}' cannot be used as a category ({series.dtype})",
            [field_error(series.name, f"values of type {series.dtype} are not categories")],
        ) from error
    counts = text.drop_nulls().value_counts(name="count").sort(["count", "value"], descending=[True, False])
    values: list[str] = counts.get_column("value").to_list()
    top = values[:max_categories]
    categories = list(top)
    other = missing = -1
    if len(values) > max_categories:
        other = len(categories)
        categories.append(_unused_label(OTHER, top))
    nulls = text.is_null().to_numpy()
    if nulls.any():
        missing = len(categories)
        categories.append(_unused_label(MISSING, top))
    codes = (
        text.replace_strict({value: i for i, value in enumerate(top)}, default=other, return_dtype=pl.Int64)
        .to_numpy()
        .astype(np.int64, copy=True)
    )
    codes[nulls] = missing
    return _Categorical(series.name, categories, codes)


def _unused_label(label: str, taken: Sequence[str]) -> str:
    # A real category may be called "other" or "missing": the pooled bucket must not merge with it.
    while label in taken:
        label = f"({label})"
    return label


# --- K-Means ------------------------------------------------------------------------------------------


@dataclass
class _Fit:
    labels: Labels  # per row, -1 = outlier
    silhouette: float | None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _sample(rng: np.random.Generator, rows: int, size: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    if rows <= size:
        return np.arange(rows)
    return np.sort(rng.choice(rows, size=size, replace=False))


def _fit_kmeans(encoded: _Encoded, spec: SegmentationSpec, progress: ProgressReporter) -> _Fit:
    data = encoded.matrix
    rows = data.shape[0]
    rng = np.random.default_rng(spec.random_state)
    fit_rows = _sample(rng, rows, spec.fit_sample_size)
    sampled = len(fit_rows) < rows
    fit_data = data[fit_rows] if sampled else data
    warnings: list[str] = []

    ks = candidate_ks(spec, _distinct_rows(fit_data))
    if ks.stop - 1 < spec.max_clusters:
        warnings.append(
            f"maxClusters lowered to {ks.stop - 1}: the data has only {ks.stop} distinct rows "
            "(after encoding)"
        )
    sil_local = _sample(rng, len(fit_rows), spec.silhouette_sample_size)
    n_init = _SMALL_FIT_N_INIT if len(fit_rows) <= _SMALL_FIT_ROWS else 1

    # Stage shares from a 1M-row profile: candidate fits ~45%, silhouettes ~25%, refit on all rows ~25%.
    fits_end, sil_end = (0.45, 0.7) if sampled else (0.75, 1.0)
    models: list[KMeans] = []
    inertias: list[float] = []
    for i, k in enumerate(ks):
        model = KMeans(n_clusters=k, n_init=n_init, random_state=spec.random_state).fit(fit_data)
        models.append(model)
        # On a sample, the inertia of the fit would not compare with the final model's: it is measured
        # on all rows (one labelling pass, far cheaper than a fit).
        inertias.append(-float(model.score(data)) if sampled else float(model.inertia_))
        progress(fits_end * (i + 1) / len(ks), f"Fitted k={k}")

    silhouettes = _silhouettes(
        fit_data[sil_local],
        [m.labels_[sil_local].astype(np.int64) for m in models],
        StageProgress(progress, fits_end, sil_end),
    )
    candidates = [
        {"k": k, "silhouette": s, "inertia": inertia}
        for k, s, inertia in zip(ks, silhouettes, inertias, strict=True)
    ]
    best = choose_k(list(zip(ks, silhouettes, strict=True)))
    chosen = models[best - ks.start]
    if not sampled:
        labels = chosen.labels_.astype(np.int64)
    else:
        progress(sil_end, f"Fitting k={best} on all {rows} rows")
        final = KMeans(
            n_clusters=best, init=chosen.cluster_centers_, n_init=1, random_state=spec.random_state
        )
        labels = final.fit(data).labels_.astype(np.int64)
    progress(1.0, f"Chose k={best}")
    parameters = {"fitSampleSize": len(fit_rows), "silhouetteSampleSize": len(sil_local), "nInit": n_init}
    # The reported silhouette is the chosen candidate's. The refit on all rows moves its centres by
    # little (2-3 Lloyd passes) and rescoring it would cost another full pass over the sample's
    # distances (~1/3 of the silhouette time at 1M rows) for a change in the 3rd decimal.
    return _Fit(labels, silhouettes[best - ks.start], candidates, parameters, warnings)


def _distinct_rows(data: Matrix) -> int:
    # Rows compared as raw bytes: exact here, since equal inputs go through the same arithmetic (no
    # -0.0 against 0.0 for one value) and every value is finite.
    row = np.dtype((np.void, data.dtype.itemsize * data.shape[1]))
    return int(np.unique(np.ascontiguousarray(data).view(row)).shape[0])


def _silhouettes(
    sample: Matrix, label_sets: Sequence[Labels], progress: Callable[[float, str], None]
) -> list[float | None]:
    """Mean silhouette of `sample` under each labelling, as sklearn's silhouette_score computes it.

    The pairwise distances are the expensive part and do not depend on the labels, so each chunk of
    rows is computed once and reduced for every labelling at once (per-cluster distance sums are a
    product with the one-hot label matrix). None when a labelling has fewer than 2 or more than
    rows - 1 clusters in the sample (the silhouette is undefined there).
    """
    rows = sample.shape[0]
    encoded = [np.unique(labels, return_inverse=True)[1].reshape(-1) for labels in label_sets]
    sizes = [int(codes.max()) + 1 for codes in encoded]
    bounds = np.cumsum([0, *sizes])
    onehot = np.zeros((rows, int(bounds[-1])))
    counts = []
    for j, codes in enumerate(encoded):
        onehot[np.arange(rows), bounds[j] + codes] = 1.0
        counts.append(np.bincount(codes, minlength=sizes[j]).astype(np.float64))
    totals = np.zeros(len(label_sets))
    sq = (sample * sample).sum(axis=1)
    chunk_rows = max(1, _SILHOUETTE_CHUNK_BYTES // (8 * rows))
    index = np.arange(chunk_rows)
    for start in range(0, rows, chunk_rows):
        stop = min(rows, start + chunk_rows)
        here = index[: stop - start]
        dist = sq[start:stop, None] + sq[None, :] - 2.0 * (sample[start:stop] @ sample.T)
        np.maximum(dist, 0.0, out=dist)
        np.sqrt(dist, out=dist)
        dist[here, start + here] = 0.0  # exact zero on the diagonal, whatever the rounding
        sums = dist @ onehot
        for j, codes in enumerate(encoded):
            own = codes[start:stop]
            count = counts[j]
            block = sums[:, bounds[j] : bounds[j + 1]]
            own_count = count[own]
            intra = block[here, own] / np.maximum(own_count - 1.0, 1.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                mean_to = block / count[None, :]
            mean_to[here, own] = np.inf
            inter = mean_to.min(axis=1)
            denom = np.maximum(intra, inter)
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(denom > 0, (inter - intra) / denom, 0.0)
            values[own_count <= 1] = 0.0  # a singleton cluster scores 0, by definition
            totals[j] += values.sum()
        progress(stop / rows, f"Silhouette: {stop} of {rows} sample rows")
    return [float(totals[j] / rows) if 2 <= sizes[j] <= rows - 1 else None for j in range(len(label_sets))]


# --- DBSCAN -------------------------------------------------------------------------------------------


def _fit_dbscan(encoded: _Encoded, spec: SegmentationSpec, progress: ProgressReporter) -> _Fit:
    data = encoded.matrix
    rows, width = data.shape
    rng = np.random.default_rng(spec.random_state)
    warnings: list[str] = []
    fit_rows = _sample(rng, rows, spec.dbscan_sample_size)
    min_samples = spec.min_samples if spec.min_samples is not None else min(max(2 * width, 4), 50)
    eps = spec.eps if spec.eps is not None else _estimate_eps(data[fit_rows], min_samples)
    progress(0.2, f"eps={eps:.4g}, minSamples={min_samples}")

    fit_rows = _bound_neighbourhoods(data, fit_rows, eps, rng, warnings)
    fit_data = data[fit_rows]
    model = DBSCAN(eps=eps, min_samples=min_samples).fit(fit_data)
    fit_labels = model.labels_.astype(np.int64)
    core = model.core_sample_indices_
    if len(core) == 0:
        raise InsufficientData(
            f"DBSCAN found no cluster: no row has {min_samples} neighbours within eps={eps:.4g}; "
            "raise eps or lower minSamples",
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
        sil_rows = clustered[_sample(rng, len(clustered), spec.silhouette_sample_size)]
        # Outliers are no cluster: the silhouette is that of the clustered rows.
        silhouette = _silhouettes(data[sil_rows], [labels[sil_rows]], lambda *_: None)[0]
    progress(1.0, "DBSCAN done")
    parameters = {
        "eps": float(eps),
        "minSamples": min_samples,
        "fitSampleSize": len(fit_rows),
        "epsEstimated": spec.eps is None,
    }
    return _Fit(labels, silhouette, [], parameters, warnings)


def _assign_to_cores(
    data: Matrix,
    rest: np.ndarray[Any, np.dtype[np.int64]],
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
    subset = _sample(rng, len(cores), _DBSCAN_FIRST_PASS_CORES)
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
    fit_rows: np.ndarray[Any, np.dtype[np.int64]],
    eps: float,
    rng: np.random.Generator,
    warnings: list[str],
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Shrink the DBSCAN sample when its neighbourhood lists would exceed the memory budget."""
    fit_data = data[fit_rows]
    probe = fit_data[_sample(rng, len(fit_rows), _DBSCAN_PROBE_ROWS)]
    found = KDTree(fit_data).query_radius(probe, r=eps, count_only=True)
    share = float(np.mean(found)) / len(fit_rows)
    if share * len(fit_rows) ** 2 <= _DBSCAN_NEIGHBOUR_BUDGET:
        return fit_rows
    size = max(1000, int(math.sqrt(_DBSCAN_NEIGHBOUR_BUDGET / share)))
    if size >= len(fit_rows):
        return fit_rows
    warnings.append(
        f"eps={eps:.4g} puts ~{share:.0%} of the rows in each neighbourhood; DBSCAN was fitted on "
        f"{size} rows instead of {len(fit_rows)} to bound memory"
    )
    return np.sort(rng.choice(fit_rows, size=size, replace=False))


# --- result -------------------------------------------------------------------------------------------


def _build_result(encoded: _Encoded, spec: SegmentationSpec, fit: _Fit) -> tuple[Labels, dict[str, Any]]:
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
    names = name_segments([p.signals for p in profiles if p.id != OUTLIERS_ID])
    segments = []
    for profile in profiles:
        name = OUTLIERS_NAME if profile.id == OUTLIERS_ID else names[profile.id]
        segments.append(profile.as_json(name, rows))

    result = {
        "algorithm": spec.algorithm,
        "k": len(order),
        "silhouette": fit.silhouette,
        "rowCount": rows,
        "fieldsUsed": encoded.fields,
        "candidates": fit.candidates,
        "segments": segments,
        "imputed": encoded.imputed,
        "warnings": encoded.warnings + fit.warnings,
        "parameters": fit.parameters,
    }
    return labels, _json_safe(result)


@dataclass
class _Profile:
    id: int
    size: int
    centroid: dict[str, Any]
    characteristics: list[dict[str, Any]]
    signals: list[FeatureSignal]

    def as_json(self, name: str, rows: int) -> dict[str, Any]:
        ranked = sorted(self.signals, key=lambda s: (-abs(s.score), s.field))[:DISTINGUISHING_TOP]
        return {
            "id": self.id,
            "name": name,
            "size": self.size,
            "share": self.size / rows,
            "centroid": self.centroid,
            "characteristics": self.characteristics,
            "distinguishingFeatures": [
                {"field": s.field, "score": s.score}
                | ({"category": s.category} if s.category is not None else {})
                for s in ranked
            ],
        }


def _profiles(encoded: _Encoded, labels: Labels, ids: Sequence[int]) -> list[_Profile]:
    slots = len(ids)
    # Outliers (-1) go to the last slot so one bincount covers every segment.
    slot = np.where(labels == OUTLIERS_ID, slots - 1, labels)
    sizes = np.bincount(slot, minlength=slots).astype(np.float64)
    numeric_means = [
        np.bincount(slot, weights=encoded.raw[:, j], minlength=slots) / sizes
        for j in range(len(encoded.numeric))
    ]
    shares = []
    for cat in encoded.categorical:
        width = len(cat.categories)
        counts = np.bincount(slot * width + cat.codes, minlength=slots * width).reshape(slots, width)
        population = np.bincount(cat.codes, minlength=width) / len(cat.codes)
        shares.append((counts / sizes[:, None], population))

    profiles = []
    for position, segment_id in enumerate(ids):
        centroid: dict[str, Any] = {}
        characteristics: dict[str, dict[str, Any]] = {}
        signals: list[FeatureSignal] = []
        for j, name in enumerate(encoded.numeric):
            value = float(numeric_means[j][position])
            z = (value - float(encoded.mean[j])) / float(encoded.std[j])
            centroid[name] = value
            characteristics[name] = {
                "field": name,
                "segmentValue": value,
                "populationValue": float(encoded.mean[j]),
                "difference": z,
                "measure": "z",
            }
            signals.append(FeatureSignal(name, z))
        for cat, (segment_share, population) in zip(encoded.categorical, shares, strict=True):
            here = segment_share[position]
            centroid[cat.name] = {c: float(here[i]) for i, c in enumerate(cat.categories)}
            zs = (here - population) / np.sqrt(population * (1.0 - population))
            # The most over-represented category says who is in the segment; an under-represented one
            # ("few from the north") says little. Ties go to the first, most frequent, category.
            top = int(np.argmax(zs))
            characteristics[cat.name] = {
                "field": cat.name,
                "category": cat.categories[top],
                "segmentValue": float(here[top]),
                "populationValue": float(population[top]),
                "difference": float(here[top] / population[top]),
                "measure": "lift",
            }
            signals.append(FeatureSignal(cat.name, float(zs[top]), cat.categories[top], float(here[top])))
        profiles.append(
            _Profile(
                segment_id,
                int(sizes[position]),
                {name: centroid[name] for name in encoded.fields},
                [characteristics[name] for name in encoded.fields],
                signals,
            )
        )
    return profiles


def _number(value: Any) -> str:
    return f"{float(value):.6g}"


def _json_safe(value: Any) -> Any:
    """Plain Python types only, and no NaN/inf anywhere (JSON has no such numbers): those become null."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value
