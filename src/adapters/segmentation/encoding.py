"""The model matrix of a segmentation: the selected fields of a polars frame, encoded so that distances
between rows mean something.

Numeric fields are z-scored, each after scaling by the power of two at or above its largest magnitude
(exact in binary floating point): the squares and sums of a standardisation then stay below the row
count, so any finite double (up to 1.8e308, the most a JSON number or a float column holds) is
standardised without overflow; sums of raw values near 1e308 would overflow to inf and the z-scores to
NaN. Categorical and boolean fields are one-hot encoded on their
`max_categories` most frequent values (ties by value), the rest pooled as "other". The indicators are
1/sqrt(2) rather than 1, so that two different categories are at distance 1, as two values one standard
deviation apart in a numeric field (the k-prototypes weighting, with gamma = the numeric spread): with
plain 0/1 a mismatch counts double, and a noisy categorical field splits real clusters. Nulls (and
NaN/inf) are imputed, numeric with the median and categorical as the category "missing", and counted.
A field that is all null or constant is dropped with a warning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from adapters.frames import FrameDataset
from adapters.segmentation.fit import Labels, Matrix
from domain.data import ColumnKind
from domain.errors import InsufficientData, ValidationFailed, column_error, field_error
from domain.segmentation import SegmentationSpec, selected_fields

OTHER = "other"
MISSING = "missing"
_INDICATOR = 1.0 / math.sqrt(2.0)  # a category mismatch then weighs one numeric standard deviation


@dataclass(frozen=True)
class CategoricalField:
    name: str
    categories: list[str]
    codes: Labels  # per row, an index into `categories`


@dataclass(frozen=True)
class Encoded:
    fields: list[str]  # the fields kept, in the order requested
    numeric: list[str]
    # (rows, numeric fields), imputed, each field divided by 2**exponent: every value in (-1, 1).
    scaled: Matrix
    exponents: np.ndarray[Any, np.dtype[np.int64]]  # per numeric field: original = scaled * 2**exponent
    mean: Matrix  # of the scaled values
    std: Matrix  # of the scaled values; > 0, since a constant field is dropped
    categorical: list[CategoricalField]
    matrix: Matrix  # (rows, model columns): z-scores then category indicators
    imputed: dict[str, int]
    warnings: list[str]


def encode(dataset: FrameDataset, spec: SegmentationSpec) -> Encoded:
    """Raises InsufficientData when no selected field is usable, ValidationFailed for a field whose
    values cannot be categories (lists, structs): problems only the data shows."""
    frame = dataset.frame
    schema = dataset.schema
    rows = frame.height
    numeric: list[str] = []
    columns: list[Matrix] = []
    categorical: list[CategoricalField] = []
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
                values[missing] = _median(values[~missing])
            if float(values.min()) == float(values.max()):
                warnings.append(f"field '{name}' dropped: every value is {float(values[0]):.6g}")
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
    scaled = np.empty((rows, len(columns)), order="F")
    exponents = np.zeros(len(columns), dtype=np.int64)
    for j, values in enumerate(columns):
        exponents[j] = int(np.frexp(np.max(np.abs(values)))[1])
        scaled[:, j] = np.ldexp(values, -exponents[j])
    del columns
    mean = scaled.mean(axis=0)
    std = scaled.std(axis=0)
    width = len(numeric) + sum(len(c.categories) for c in categorical)
    matrix = np.zeros((rows, width))
    matrix[:, : len(numeric)] = (scaled - mean) / std
    offset = len(numeric)
    for cat in categorical:
        matrix[np.arange(rows), offset + cat.codes] = _INDICATOR
        offset += len(cat.categories)
    kept = set(numeric) | {c.name for c in categorical}
    fields = [name for name in selected_fields(spec, schema) if name in kept]
    return Encoded(fields, numeric, scaled, exponents, mean, std, categorical, matrix, imputed, warnings)


def original_units(scaled: float, exponent: int) -> float:
    """A scaled statistic (a mean, within the field's range) back in the field's units: finite."""
    return float(np.ldexp(scaled, exponent))


def _median(values: Matrix) -> float:
    """numpy's median, but finite for any finite values: numpy averages the two middle values of an
    even count as (a + b) / 2, which overflows near the double range."""
    middle = len(values) // 2
    if len(values) % 2:
        return float(np.partition(values, middle)[middle])
    part = np.partition(values, (middle - 1, middle))
    low, high = float(part[middle - 1]), float(part[middle])
    mid = (low + high) / 2
    return mid if math.isfinite(mid) else low / 2 + high / 2


def _encode_categorical(series: pl.Series, max_categories: int) -> CategoricalField:
    try:
        # Renamed: a field called like value_counts' count column would clash with it.
        text = series.cast(pl.String).alias("value")
    except pl.exceptions.PolarsError as error:
        # Nested values (lists, structs) have no category to one-hot. The detail names the column.
        raise ValidationFailed(
            f"field '{series.name}' cannot be used as a category ({series.dtype})",
            [column_error(series.name, f"values of type {series.dtype} are not categories")],
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
    return CategoricalField(series.name, categories, codes)


def _unused_label(label: str, taken: Sequence[str]) -> str:
    # A real category may be called "other" or "missing": the pooled bucket must not merge with it.
    while label in taken:
        label = f"({label})"
    return label
