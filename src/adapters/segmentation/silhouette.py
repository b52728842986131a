"""The mean silhouette of one sample under several labellings at once, as scikit-learn's
silhouette_score computes it, in bounded memory.

The full silhouette is quadratic in rows, so it is measured on a seeded sample; the sample's distance
matrix is computed in chunks and each chunk is shared by every labelling (every candidate k).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from adapters.segmentation.fit import Labels, Matrix

# Bytes of one distance-matrix chunk (float64): bounded whatever the sample size, and small enough that
# its several passes stay in cache (64 MB chunks measured ~15% slower than 16 MB, 1 MB chunks slower
# again: too many small BLAS calls).
CHUNK_BYTES = 16 * 2**20


def silhouettes(
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
    chunk_rows = max(1, CHUNK_BYTES // (8 * rows))
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
