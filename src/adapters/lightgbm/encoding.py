"""Turns a polars frame into LightGBM's float matrix, recording how categoricals were encoded so
that the scorers encode a raw row exactly the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from domain.errors import ValidationFailed, field_error
from domain.gbm.training import CategoricalEncoding, FeaturePlan

_TRUE = frozenset({"1", "true"})
_FALSE = frozenset({"0", "false"})


@dataclass(frozen=True)
class EncodedFeatures:
    matrix: np.ndarray
    feature_names: list[str]
    input_features: list[dict[str, Any]]
    native_categorical_columns: list[int]
    column_field: list[str]  # the input field behind each matrix column (for importances)
    warnings: list[str]


def label_vector(frame: pl.DataFrame, label: str) -> np.ndarray:
    """The label as 0.0/1.0; anything else is the caller's mistake, reported with the label's name."""
    column = frame.get_column(label)
    nulls = column.null_count()
    if nulls:
        raise ValidationFailed(
            f"the label '{label}' has {nulls} missing value(s)", [field_error("label", "missing values")]
        )
    if column.dtype == pl.Boolean:
        return column.cast(pl.Float64).to_numpy()
    if column.dtype.is_numeric():
        values = column.cast(pl.Float64).to_numpy()
        bad = ~np.isin(values, (0.0, 1.0))
        if bad.any():
            example = values[bad][0]
            raise ValidationFailed(
                f"the label '{label}' must be 0 or 1; found {example!r}",
                [field_error("label", f"{int(bad.sum())} value(s) are not 0 or 1, e.g. {example!r}")],
            )
        return values
    text = column.cast(pl.String).str.to_lowercase().str.strip_chars()
    known = text.is_in(list(_TRUE | _FALSE))
    if not known.all():
        example = column.filter(~known)[0]
        raise ValidationFailed(
            f"the label '{label}' must be 0/1 or true/false; found {example!r}",
            [field_error("label", f"unexpected value {example!r}")],
        )
    return text.is_in(list(_TRUE)).cast(pl.Float64).to_numpy()


def _top_categories(column: pl.Series, limit: int) -> tuple[list[str], int]:
    counts = column.drop_nulls().value_counts(name="n").sort(["n", column.name], descending=[True, False])
    categories = [str(value) for value in counts.get_column(column.name).head(limit).to_list()]
    return categories, counts.height


def encode_features(
    frame: pl.DataFrame, plan: FeaturePlan, encoding: CategoricalEncoding, max_categories: int
) -> EncodedFeatures:
    numeric = frame.select(pl.col(name).cast(pl.Float64) for name in plan.numeric)
    blocks: list[np.ndarray] = []
    if numeric.width:
        blocks.append(numeric.to_numpy(order="fortran").astype(np.float64, copy=False))
    feature_names = list(plan.numeric)
    column_field = list(plan.numeric)
    input_features: list[dict[str, Any]] = [{"name": name, "kind": "numeric"} for name in plan.numeric]
    native_columns: list[int] = []
    warnings: list[str] = []
    for name in plan.categorical:
        # Categories are compared as strings by both scorers, whatever type the column had.
        column = frame.get_column(name).cast(pl.String)
        categories, distinct = _top_categories(column, max_categories)
        if distinct > len(categories):
            warnings.append(
                f"'{name}' has {distinct} categories; the {len(categories)} most frequent are kept, "
                "the others score like an unseen category"
            )
        input_features.append(
            {"name": name, "kind": "categorical", "encoding": encoding.value, "categories": categories}
        )
        codes = column.replace_strict(
            categories, list(range(len(categories))), default=None, return_dtype=pl.Float64
        ).to_numpy()
        if encoding is CategoricalEncoding.NATIVE:
            native_columns.append(len(feature_names))
            blocks.append(codes.reshape(-1, 1))  # unseen and missing stay NaN
            feature_names.append(name)
            column_field.append(name)
        else:
            onehot = np.zeros((frame.height, len(categories)), dtype=np.float64, order="F")
            present = ~np.isnan(codes)
            onehot[np.flatnonzero(present), codes[present].astype(np.int64)] = 1.0
            blocks.append(onehot)
            feature_names.extend(f"{name}={category}" for category in categories)
            column_field.extend([name] * len(categories))
    matrix = np.hstack(blocks) if len(blocks) > 1 else blocks[0]
    return EncodedFeatures(
        matrix=np.ascontiguousarray(matrix, dtype=np.float64),
        feature_names=feature_names,
        input_features=input_features,
        native_categorical_columns=native_columns,
        column_field=column_field,
        warnings=warnings,
    )
