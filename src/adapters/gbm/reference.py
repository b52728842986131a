"""The drift reference a model carries (modelState.reference): each input field's distribution over
the training rows, and the score's over the validation rows, binned so that
`domain.gbm.reference.numeric_bin` and `field_buckets` put a new row in the same bins (tested)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from adapters.gbm.calibration import FittedCalibration, calibrated_scores
from adapters.gbm.encoding import category_codes
from adapters.gbm.fitting import Scored
from adapters.gbm.metrics import expected_calibration_error, log_loss, roc_auc

_DECILES = np.linspace(0.1, 0.9, 9)
# Distributions are summarised from at most this many rows (a seeded sample beyond it): building the
# reference cost about 1 us per value and field, 1.2 s at 1,000,000 x 20 (measured), while a sample
# of 200,000 moves a share by about 0.0007 (one standard error at a share of 0.1) and biases a PSI
# by about (bins - 1) / 200,000: 0.005 for a field of 1,000 categories, far below the 0.1 band.
REFERENCE_SAMPLE_ROWS = 200_000
_SAMPLE_SEED = 20_261_207


def sampled(rows: np.ndarray) -> np.ndarray:
    """`rows` itself, or a seeded sample of REFERENCE_SAMPLE_ROWS of them, in their order."""
    if len(rows) <= REFERENCE_SAMPLE_ROWS:
        return rows
    chosen = np.random.default_rng(_SAMPLE_SEED).choice(len(rows), REFERENCE_SAMPLE_ROWS, replace=False)
    return rows[np.sort(chosen)]


def decile_edges(values: np.ndarray) -> np.ndarray:
    """The deciles of the finite values (numpy's "linear" quantiles), duplicates removed."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return np.empty(0)
    edges = np.unique(np.quantile(finite, _DECILES, method="linear"))
    return np.asarray(edges[np.isfinite(edges)])


def between_values(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each edge moved to the midpoint between the values on either side of it, so that no value
    lies on an edge. For the score: a small model gives many rows the same score, a decile lands on
    it, and a scorer whose `exp` differs by one ulp (V8's Math.exp, numpy's, the C library's) would
    move that whole group to the next bin and change the PSI by tenths (measured: 4 of 62 seeded
    batches, 0.07-0.24). An edge past the largest value would leave its last bin empty: dropped."""
    distinct = np.unique(values[np.isfinite(values)])
    moved = []
    for edge in edges:
        above = np.searchsorted(distinct, edge, side="right")
        if above == len(distinct):
            continue
        below = distinct[above - 1] if above > 0 else edge
        moved.append(below + (distinct[above] - below) / 2)
    return np.unique(np.asarray(moved, dtype=np.float64))


def _binned(
    values: np.ndarray, rows: int, *, separate: bool = False
) -> tuple[list[float], list[float], int]:
    """Edges and shares (over `rows`) of the non-missing values; the missing (NaN) count. With
    `separate`, the edges sit between distinct values (`between_values`)."""
    missing = np.isnan(values)
    present = values[~missing]
    edges = decile_edges(present)
    if separate:
        edges = between_values(edges, present)
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=len(edges) + 1)
    return edges.tolist(), (counts / rows).tolist(), int(np.count_nonzero(missing))


def _numeric(name: str, column: pl.Series) -> dict[str, Any]:
    # Null and NaN are missing alike; booleans count as 1/0, as a scorer reads them.
    values = column.cast(pl.Float64).fill_null(np.nan).to_numpy()
    edges, shares, missing = _binned(values, len(values))
    return {
        "name": name,
        "kind": "numeric",
        "edges": edges,
        "shares": shares,
        "missing_share": missing / len(values),
    }


def _categorical(name: str, column: pl.Series, categories: Sequence[str]) -> dict[str, Any]:
    rows = column.len()
    codes = category_codes(column, list(categories))
    known = ~np.isnan(codes)
    counts = np.bincount(codes[known].astype(np.int64), minlength=len(categories))
    missing = column.null_count()
    return {
        "name": name,
        "kind": "categorical",
        "categories": list(categories),
        "shares": (counts / rows).tolist(),
        # A value no recorded category matches (a NaN or a fraction included): neither bin nor missing.
        "other_share": (rows - int(np.count_nonzero(known)) - missing) / rows,
        "missing_share": missing / rows,
    }


def drift_reference(
    frame: pl.DataFrame,
    input_features: Sequence[dict[str, Any]],
    training_rows: np.ndarray,
    scores: np.ndarray,
    score_source: str,
    performance: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """`training_rows` index the frame's rows the trees trained on (a sample of them beyond
    REFERENCE_SAMPLE_ROWS; `rows` says how many were summarised); `scores` are the model's scores
    (calibrated when calibrated) on the validation rows (`score_source` "validation"), or the training
    rows ("training"); `performance` the (labels, scores) its AUC, logloss and ECE are measured on."""
    subset = frame.select(f["name"] for f in input_features)
    training_rows = sampled(training_rows)
    if len(training_rows) != frame.height:
        subset = subset[training_rows]
    fields = [
        _numeric(f["name"], subset.get_column(f["name"]))
        if f["kind"] == "numeric"
        else _categorical(f["name"], subset.get_column(f["name"]), f["categories"])
        for f in input_features
    ]
    scores = np.asarray(scores, dtype=np.float64)[sampled(np.arange(len(scores)))]
    edges, shares, _ = _binned(scores, len(scores), separate=True)
    reference: dict[str, Any] = {
        "rows": subset.height,
        "fields": fields,
        "score": {"rows": len(scores), "source": score_source, "edges": edges, "shares": shares},
    }
    if performance is not None:
        labels, scored = performance
        reference["performance"] = {
            "rows": len(labels),
            "auc": roc_auc(labels, scored),
            "logloss": log_loss(labels, scored),
            "ece": expected_calibration_error(labels, scored),
        }
    return reference


def model_reference(
    frame: pl.DataFrame,
    input_features: Sequence[dict[str, Any]],
    train_rows: np.ndarray,
    labels: np.ndarray,
    scored: Scored,
    fitted: FittedCalibration | None,
) -> dict[str, Any]:
    """The reference of the returned model. The score binned is what the scorers answer (calibrated
    when calibrated); its performance is measured on the out-of-fold calibrated scores when there are
    (the ones `metrics.calibration` reads), so that it is not optimistic."""
    score = performance = scored.probability
    if fitted is not None and fitted.block is not None:
        score = calibrated_scores(fitted.block, scored.probability, scored.raw_margin)
        if fitted.out_of_fold is not None:
            performance = fitted.out_of_fold
    return drift_reference(
        frame,
        input_features,
        train_rows,
        score,
        scored.source,
        performance=(labels[scored.rows], performance),
    )
