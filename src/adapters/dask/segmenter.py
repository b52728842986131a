"""K-Means on the Dask cluster behind the Segmenter port, for a `DaskTableDataset`.

As the local segmenter does above `fit_sample_size` rows (adapters/segmentation/kmeans.py): the k's
are fitted and scored on a seeded sample, and the chosen k is refitted on every row from the sample's
centres. Here the sample (at most `fit_sample_size` rows, drawn on the workers) comes to this
process and goes through the local search unchanged; the refit is Lloyd's algorithm on the cluster
(each part: nearest centre, sums and counts; here: the new centres), until the centres move less
than scikit-learn's tolerance or after `_MAX_ITERATIONS`; the profiles are summed on the cluster
(segment sizes, scaled numeric sums, category counts) and written by the local profile code.
dask-ml's KMeans works with the pinned scikit-learn, but measured 9.8 s for 200,000 x 6 and k=4 on
this 2-core LocalCluster (numba's compilation included) and brings numba and llvmlite: not used.

Only K-Means: DBSCAN on the cluster is 422 (not yet). A candidate's inertia is measured on the
sample, not on every row as locally.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from adapters.dask import segment_parts as parts
from adapters.dask import training_parts as bookkeeping
from adapters.dask.cluster import cluster_client
from adapters.postgres.partition_read import TableRead
from adapters.segmentation.encoding import CategoricalField, Encoded
from adapters.segmentation.fit import Fit
from adapters.segmentation.kmeans import fit_kmeans
from adapters.segmentation.profiles import profiles_from_sums, result_of
from application.ports import Segmenter
from domain.data import ColumnKind, Dataset
from domain.errors import InsufficientData, ValidationFailed, field_error
from domain.progress import ProgressReporter, StageProgress
from domain.segmentation import Imputation, SegmentationResult, SegmentationSpec, selected_fields

_MAX_ITERATIONS = 100
_TOLERANCE = 1e-4  # scikit-learn's, relative to the mean variance of the columns


class DaskSegmenter(Segmenter[TableRead]):
    def __init__(self, scheduler: str, database_url: str | None, *, partition_rows: int = 1_000_000) -> None:
        self._scheduler = scheduler
        self._database_url = database_url
        self._partition_rows = partition_rows

    def segment(
        self, dataset: Dataset[TableRead], spec: SegmentationSpec, progress: ProgressReporter
    ) -> SegmentationResult:
        return self.fit_segments(dataset, spec, progress)[1]

    def fit_segments(
        self,
        dataset: Dataset[TableRead],
        spec: SegmentationSpec,
        progress: ProgressReporter,
        *,
        labels: bool = False,
    ) -> tuple[np.ndarray | None, SegmentationResult]:
        """The result, and with `labels` every row's segment id in page order (tests compare them)."""
        if spec.algorithm != "kmeans":
            raise ValidationFailed(
                "only K-Means runs on the Dask cluster; DBSCAN needs fewer rows than ML_WORKER_DASK_MIN_ROWS",
                [field_error("algorithm", "not available on the Dask cluster yet")],
            )
        client = cluster_client(self._scheduler, timeout_s=10.0)
        return bookkeeping.on_cluster(
            client, "segmentation", lambda held: self._fit(client, held, dataset, spec, progress, labels)
        )

    def _fit(
        self,
        client: Any,
        held: list[Any],
        dataset: Dataset[TableRead],
        spec: SegmentationSpec,
        progress: ProgressReporter,
        with_labels: bool,
    ) -> tuple[np.ndarray | None, SegmentationResult]:
        read, seed = dataset.frame, spec.random_state
        frames = bookkeeping.read_parts(client, held, read, self._database_url, self._partition_rows)
        n = len(frames)
        fields = list(selected_fields(spec, dataset.schema))
        numeric = [name for name in fields if dataset.schema[name] is ColumnKind.NUMERIC]
        categorical = [name for name in fields if name not in numeric]
        counts: list[parts.FieldCounts] = client.gather(
            client.map(parts.count_fields, frames, [numeric] * n, [categorical] * n)
        )
        rows = sum(c.rows for c in counts)
        if rows > read.max_rows:
            raise bookkeeping.too_large(read.max_rows)
        keep = min(1.0, spec.fit_sample_size / rows)
        samples = client.gather(
            client.map(parts.sample_task, frames, [fields] * n, [keep] * n, [seed] * n, range(n))
        )
        sample = pl.concat(samples, how="vertical")
        progress(0.1, f"Counted {rows} rows on the cluster; sampled {sample.height}")

        encoding = parts.encoding_from(counts, sample, fields, numeric, spec.max_categories)
        if not encoding.fields:
            raise InsufficientData(
                "no usable field: every selected field is constant or entirely null",
                [field_error("fields", message) for message in encoding.warnings],
            )
        sums = client.gather(client.map(parts.scaled_sums, frames, [encoding] * n))
        encoding = parts.with_spread(encoding, sums, rows)
        encoded = client.map(parts.encode_part, frames, [encoding] * n, pure=False)
        held += encoded
        bookkeeping.settled(encoded)
        held[:] = [f for f in held if all(f is not frame for frame in frames)]
        frames = []

        # The k's on the sample, exactly as the local search runs on one.
        sample_matrix = parts.encode_part(sample, encoding)[0]
        search = fit_kmeans(sample_matrix, spec, StageProgress(progress, 0.1, 0.6))
        k = int(search.labels.max()) + 1
        centres = np.stack([sample_matrix[search.labels == c].mean(axis=0) for c in range(k)])

        tolerance = _TOLERANCE * float(np.mean(np.var(sample_matrix, axis=0)))
        for iteration in range(_MAX_ITERATIONS):
            steps = client.gather(client.map(parts.lloyd_step, encoded, [centres] * n))
            total = np.sum([s[0] for s in steps], axis=0)
            sizes = np.sum([s[1] for s in steps], axis=0)
            moved = np.where(sizes[:, None] > 0, total / np.maximum(sizes, 1.0)[:, None], centres)
            shift = float(((moved - centres) ** 2).sum())
            centres = moved
            progress(0.6 + 0.3 * (iteration + 1) / _MAX_ITERATIONS, f"Lloyd step {iteration + 1} on all rows")
            if shift <= tolerance:
                break

        widths = [len(categories) for _, categories, _ in encoding.categorical]
        profile_f = client.map(parts.profile_sums, encoded, [centres] * n, [widths] * n)
        held += profile_f
        summed = client.gather(profile_f)
        result = _result(encoding, spec, search, summed, rows)
        labels = np.concatenate([s[3] for s in summed]) if with_labels else None
        progress(1.0, f"Done: {result.k} segments")
        return labels, result


def _result(
    encoding: parts.Encoding, spec: SegmentationSpec, search: Fit, summed: list[Any], rows: int
) -> SegmentationResult:
    sizes = np.sum([s[0] for s in summed], axis=0)
    numeric = np.sum([s[1] for s in summed], axis=0)
    categories = [np.sum([s[2][i] for s in summed], axis=0) for i in range(len(encoding.categorical))]
    clusters = [c for c in range(len(sizes)) if sizes[c] > 0]
    # Ids follow size (largest first; ties by fit order), as the local result's.
    order = sorted(clusters, key=lambda c: (-sizes[c], c))
    empty = np.zeros((0,))
    meta = Encoded(
        list(encoding.fields),
        list(encoding.numeric),
        np.zeros((0, len(encoding.numeric))),
        np.asarray(encoding.exponents, dtype=np.int64),
        np.asarray(encoding.mean),
        np.asarray(encoding.std),
        [CategoricalField(name, cats, empty.astype(np.int64)) for name, cats, _ in encoding.categorical],
        np.zeros((0, encoding.width)),
        dict(encoding.imputed),
        list(encoding.warnings),
    )
    ordered_sizes = sizes[order]
    means = [numeric[order, j] / ordered_sizes for j in range(len(encoding.numeric))]
    profiles = profiles_from_sums(
        meta, list(range(len(order))), ordered_sizes, means, [c[order] for c in categories]
    )
    imputed = tuple(Imputation(name, count) for name, count in encoding.imputed.items())
    warnings = tuple(encoding.warnings)
    if math.isfinite(rows) and rows > spec.fit_sample_size:
        warnings += (
            f"k chosen on a sample of {spec.fit_sample_size} rows; the candidates' inertia is the sample's",
        )
    return result_of(profiles, spec, search, rows, tuple(encoding.fields), imputed, warnings)
