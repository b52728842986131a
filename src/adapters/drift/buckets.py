"""Counts per bucket of a reference's field, vectorised: the same counts as the pure-Python
`domain.gbm.reference.field_buckets`, in the same bucket order (numeric bins then missing;
categories, then other, then missing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from adapters.gbm.batch_scorer import category_codes, numeric_values
from domain.gbm.model_state import NUMERIC


def field_counts(field: Mapping[str, Any], column: pl.Series) -> list[int]:
    if field["kind"] == NUMERIC:
        values = numeric_values(column)
        missing = np.isnan(values)
        return [*binned_counts(field["edges"], values[~missing]), int(missing.sum())]
    categories: list[str] = field["categories"]
    codes = category_codes(column, categories)
    known = ~np.isnan(codes)
    missing = int(column.null_count())
    per_category = np.bincount(codes[known].astype(np.int64), minlength=len(categories))
    other = column.len() - int(known.sum()) - missing
    return [*(int(n) for n in per_category), other, missing]


def binned_counts(edges: Sequence[float], values: np.ndarray) -> list[int]:
    """Bin i holds edges[i-1] < v <= edges[i]: the number of edges strictly below v (+-inf in the end
    bins). `values` holds no NaN."""
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    return [int(n) for n in np.bincount(bins, minlength=len(edges) + 1)]
