"""Turns a polars frame into LightGBM's float matrix, recording how categoricals were encoded so
that the scorers encode a raw row exactly the same way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from domain.errors import ValidationFailed, field_error
from domain.gbm.scorer import category_key
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
            example = float(values[bad][0])  # a plain float: the message must not read np.float64(nan)
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


def _category_codes(
    column: pl.Series, limit: int, recorded: list[str] | None = None
) -> tuple[list[str], np.ndarray, int, int]:
    """Codes (float, NaN = missing or unseen) for the `limit` most frequent categories, named by the
    scorers' own rule (`category_key`: 3 and 3.0 are "3", True is "true"), so a raw row is encoded
    in Node and in Python exactly as it was here. Returns the categories, the codes, how many
    distinct categories there were, and how many values could not be a category."""
    counts = column.drop_nulls().value_counts(name="__n")
    key_of: dict[Any, str] = {}
    frequency: dict[str, int] = {}
    unusable = 0
    for value, n in zip(
        counts.get_column(column.name).to_list(), counts.get_column("__n").to_list(), strict=True
    ):
        key = category_key(value)
        if key is None:
            unusable += n
            continue
        key_of[value] = key
        frequency[key] = frequency.get(key, 0) + n
    if recorded is None:
        ranked = sorted(frequency.items(), key=lambda item: (-item[1], item[0]))
        categories = [key for key, _ in ranked[:limit]]
    else:
        categories = recorded
    code = {key: float(i) for i, key in enumerate(categories)}
    kept = [value for value, key in key_of.items() if key in code]
    codes = column.replace_strict(
        kept, [code[key_of[value]] for value in kept], default=None, return_dtype=pl.Float64
    ).to_numpy()
    return categories, codes, len(frequency), unusable


def category_codes(column: pl.Series, categories: list[str]) -> np.ndarray:
    """The index of each value's category in `categories` (NaN: missing, or none of them)."""
    return _category_codes(column, 0, categories)[1]


def encode_features(
    frame: pl.DataFrame,
    plan: FeaturePlan,
    encoding: CategoricalEncoding,
    max_categories: int,
    recorded: Mapping[str, list[str]] | None = None,
) -> EncodedFeatures:
    """Encode for training, or, given the `recorded` categories of a trained model, encode new rows
    exactly as that model's training rows were."""
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
        categories, codes, distinct, unusable = _category_codes(
            frame.get_column(name), max_categories, None if recorded is None else recorded[name]
        )
        if unusable:
            warnings.append(
                f"'{name}': {unusable} non-integral number(s) cannot be categories; treated as missing"
            )
        if distinct > len(categories):
            warnings.append(
                f"'{name}' has {distinct} categories; the {len(categories)} most frequent are kept, "
                "the others score like an unseen category"
            )
        input_features.append(
            {"name": name, "kind": "categorical", "encoding": encoding.value, "categories": categories}
        )
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
