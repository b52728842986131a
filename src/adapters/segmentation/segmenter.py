"""Customer segmentation with scikit-learn (K-Means or DBSCAN) on a polars frame: the Segmenter port.

The request was checked when the job was submitted (domain.segmentation.validate_segmentation_spec);
what runs here fails only on what the data alone shows: no usable field, values that are no
categories, too few distinct rows for the k's asked, no dense group for DBSCAN.

The steps, one module each: encoding.py (the model matrix), kmeans.py (the search over k, scored by
silhouette.py) or dbscan.py, then profiles.py (segments, names, the typed result).

Threads: scikit-learn and the BLAS use the OpenMP/BLAS thread counts the worker sets; nothing is
overridden here.
"""

from __future__ import annotations

import polars as pl

from adapters.frames import FrameDataset
from adapters.segmentation.dbscan import fit_dbscan
from adapters.segmentation.encoding import encode
from adapters.segmentation.fit import Labels
from adapters.segmentation.kmeans import fit_kmeans
from adapters.segmentation.profiles import build_result
from application.ports import Segmenter
from domain.progress import ProgressReporter, StageProgress
from domain.segmentation import SegmentationResult, SegmentationSpec


class SklearnSegmenter(Segmenter[pl.DataFrame]):
    def segment(
        self, dataset: FrameDataset, spec: SegmentationSpec, progress: ProgressReporter
    ) -> SegmentationResult:
        _, result = fit_segments(dataset, spec, progress)
        return result


def fit_segments(
    dataset: FrameDataset, spec: SegmentationSpec, progress: ProgressReporter
) -> tuple[Labels, SegmentationResult]:
    """Segment the rows; return each row's segment id (as in the result; -1 = outlier) and the result."""
    progress(0.0, "Preparing the data")
    encoded = encode(dataset, spec)
    progress(0.05, f"Encoded {len(encoded.fields)} fields into {encoded.matrix.shape[1]} columns")
    stage = StageProgress(progress, 0.05, 0.9)
    if spec.algorithm == "dbscan":
        fit = fit_dbscan(encoded.matrix, spec, stage)
    else:
        fit = fit_kmeans(encoded.matrix, spec, stage)
    labels, result = build_result(encoded, spec, fit)
    progress(1.0, f"Done: {result.k} segments")
    return labels, result
