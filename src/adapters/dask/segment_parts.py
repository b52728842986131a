"""What each Dask worker does for a segmentation: count what the encoding needs, encode its part with
the encoding chosen for all the parts, and run the Lloyd steps and the profile sums on it.

The encoding is the local one (adapters/segmentation/encoding.py) with its statistics taken over every
part: a numeric field's missing count, range and largest magnitude (its power-of-two scale), then the
mean and standard deviation of its scaled values; a categorical field's value counts (the same
ranking, "other" and "missing"). The imputed value of a numeric field is the median of the seeded
sample the k's are chosen on (the local encoder takes the median of every row: an exact median over
the parts would need them sorted together).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from adapters.segmentation.encoding import MISSING, OTHER, _unused_label
from adapters.segmentation.fit import Matrix
from domain.errors import ValidationFailed, column_error

_INDICATOR = 1.0 / math.sqrt(2.0)


@dataclass(frozen=True)
class FieldCounts:
    rows: int
    missing: dict[str, int] = field(default_factory=dict)  # numeric: non-finite or null; categorical: null
    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)
    magnitude: dict[str, float] = field(default_factory=dict)
    values: dict[str, dict[str, int]] = field(default_factory=dict)  # categorical: rows per value


@dataclass(frozen=True)
class Encoding:
    """The encoding every part applies (the local `Encoded` without its rows)."""

    fields: list[str]
    numeric: list[str]
    medians: list[float]
    exponents: list[int]
    mean: list[float]
    std: list[float]
    categorical: list[tuple[str, list[str], list[str]]]  # name, categories, the ranked real values
    imputed: dict[str, int]
    warnings: list[str]

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(categories) for _, categories, _ in self.categorical)


def count_fields(frame: pl.DataFrame, numeric: Sequence[str], categorical: Sequence[str]) -> FieldCounts:
    counts = FieldCounts(frame.height)
    for name in numeric:
        values = frame.get_column(name).cast(pl.Float64).to_numpy().astype(np.float64, copy=False)
        finite = values[np.isfinite(values)]
        counts.missing[name] = len(values) - len(finite)
        if len(finite):
            counts.low[name], counts.high[name] = float(finite.min()), float(finite.max())
            counts.magnitude[name] = float(np.max(np.abs(finite)))
    for name in categorical:
        text = _text(frame.get_column(name))
        counts.missing[name] = int(text.null_count())
        table = text.drop_nulls().value_counts(name="count")
        counts.values[name] = dict(
            zip(table.get_column("value").to_list(), table.get_column("count").to_list(), strict=True)
        )
    return counts


def sample_task(
    frame: pl.DataFrame, fields: Sequence[str], keep: float, seed: int, index: int
) -> pl.DataFrame:
    if keep >= 1.0:
        return frame.select(fields)
    rows = np.flatnonzero(np.random.default_rng([seed, index, 2]).random(frame.height) < keep)
    return frame.select(fields)[rows]


def scaled_sums(frame: pl.DataFrame, encoding: Encoding) -> tuple[np.ndarray, np.ndarray]:
    scaled = _scaled(frame, encoding)
    return scaled.sum(axis=0), (scaled * scaled).sum(axis=0)


def encode_part(frame: pl.DataFrame, encoding: Encoding) -> tuple[Matrix, Matrix, list[np.ndarray]]:
    """The model matrix (z-scores then indicators), the scaled numeric values and the category codes,
    as the local encoder writes them."""
    scaled = _scaled(frame, encoding)
    rows = frame.height
    matrix = np.zeros((rows, encoding.width))
    n = len(encoding.numeric)
    if n:
        matrix[:, :n] = (scaled - np.asarray(encoding.mean)) / np.asarray(encoding.std)
    offset, codes = n, []
    for name, categories, top in encoding.categorical:
        code = _codes(frame.get_column(name), categories, top)
        matrix[np.arange(rows), offset + code] = _INDICATOR
        codes.append(code)
        offset += len(categories)
    return matrix, scaled, codes


def lloyd_step(
    part: tuple[Matrix, Matrix, list[np.ndarray]], centres: Matrix
) -> tuple[Matrix, np.ndarray, float]:
    """Per centre: the sum and count of its nearest rows, and the part's inertia."""
    matrix = part[0]
    labels, distances = _nearest(matrix, centres)
    k = len(centres)
    sums = np.zeros_like(centres)
    np.add.at(sums, labels, matrix)
    return sums, np.bincount(labels, minlength=k).astype(np.float64), float(distances.sum())


def profile_sums(
    part: tuple[Matrix, Matrix, list[np.ndarray]], centres: Matrix, widths: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    """Per final cluster: its rows, the sums of the scaled numeric values, the rows of each category;
    and the part's labels (kept on the worker unless asked for)."""
    matrix, scaled, codes = part
    labels, _ = _nearest(matrix, centres)
    k = len(centres)
    sizes = np.bincount(labels, minlength=k).astype(np.float64)
    numeric = (
        np.stack(
            [np.bincount(labels, weights=scaled[:, j], minlength=k) for j in range(scaled.shape[1])], axis=1
        )
        if scaled.shape[1]
        else np.zeros((k, 0))
    )
    categories = [
        np.bincount(labels * width + code, minlength=k * width).reshape(k, width)
        for code, width in zip(codes, widths, strict=True)
    ]
    return sizes, numeric, categories, labels


def encoding_from(
    counts: list[FieldCounts],
    sample: pl.DataFrame,
    fields: Sequence[str],
    numeric_fields: Sequence[str],
    max_categories: int,
) -> Encoding:
    """The encoding of the whole table from every part's counts (the local encoder's rules); its
    means and spreads come after, from the parts' sums (`with_spread`)."""
    rows = sum(c.rows for c in counts)
    numeric: list[str] = []
    medians: list[float] = []
    exponents: list[int] = []
    categorical: list[tuple[str, list[str], list[str]]] = []
    imputed: dict[str, int] = {}
    warnings: list[str] = []
    for name in fields:
        missing = sum(c.missing.get(name, 0) for c in counts)
        if name in numeric_fields:
            if missing == rows:
                warnings.append(f"field '{name}' dropped: every value is null")
                continue
            low = min(c.low[name] for c in counts if name in c.low)
            high = max(c.high[name] for c in counts if name in c.high)
            if low == high:
                warnings.append(f"field '{name}' dropped: every value is {low:.6g}")
                continue
            values = sample.get_column(name).cast(pl.Float64).to_numpy()
            values = values[np.isfinite(values)]
            median = float(np.median(values)) if len(values) else low
            numeric.append(name)
            medians.append(min(max(median, low), high))
            exponents.append(int(np.frexp(max(c.magnitude.get(name, 0.0) for c in counts))[1]))
        else:
            total: dict[str, int] = {}
            for c in counts:
                for value, n in c.values.get(name, {}).items():
                    total[value] = total.get(value, 0) + n
            ranked = [v for v, _ in sorted(total.items(), key=lambda item: (-item[1], item[0]))]
            top = ranked[:max_categories]
            categories = list(top)
            if len(ranked) > max_categories:
                categories.append(_unused_label(OTHER, top))
            if missing:
                categories.append(_unused_label(MISSING, top))
            if len(categories) < 2:
                what = "null" if missing == rows else f"'{categories[0]}'"
                warnings.append(f"field '{name}' dropped: every value is {what}")
                continue
            categorical.append((name, categories, top))
        if missing:
            imputed[name] = missing
    kept = set(numeric) | {name for name, _, _ in categorical}
    used = [name for name in fields if name in kept]
    encoding = Encoding(
        used,
        numeric,
        medians,
        exponents,
        [0.0] * len(numeric),
        [1.0] * len(numeric),
        categorical,
        imputed,
        warnings,
    )
    return encoding


def _scaled(frame: pl.DataFrame, encoding: Encoding) -> Matrix:
    scaled = np.empty((frame.height, len(encoding.numeric)), order="F")
    for j, name in enumerate(encoding.numeric):
        values = frame.get_column(name).cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
        values[~np.isfinite(values)] = encoding.medians[j]
        scaled[:, j] = np.ldexp(values, -encoding.exponents[j])
    return scaled


def _text(series: pl.Series) -> pl.Series:
    try:
        return series.cast(pl.String).alias("value")
    except pl.exceptions.PolarsError as error:
        raise ValidationFailed(
            f"field '{series.name}' cannot be used as a category ({series.dtype})",
            [column_error(series.name, f"values of type {series.dtype} are not categories")],
        ) from error


def _codes(series: pl.Series, categories: list[str], top: list[str]) -> np.ndarray:
    text = _text(series)
    other = (
        len(top) if len(categories) > len(top) and categories[len(top)] != _missing(categories, top) else -1
    )
    codes = (
        text.replace_strict({value: i for i, value in enumerate(top)}, default=other, return_dtype=pl.Int64)
        .to_numpy()
        .astype(np.int64, copy=True)
    )
    missing = _missing(categories, top)
    codes[text.is_null().to_numpy()] = categories.index(missing) if missing is not None else -1
    return codes


def _missing(categories: list[str], top: list[str]) -> str | None:
    label = _unused_label(MISSING, top)
    return label if categories and categories[-1] == label and len(categories) > len(top) else None


def _nearest(matrix: Matrix, centres: Matrix) -> tuple[np.ndarray, np.ndarray]:
    distances = (
        (matrix * matrix).sum(axis=1)[:, None]
        - 2.0 * matrix @ centres.T
        + (centres * centres).sum(axis=1)[None, :]
    )
    labels = np.argmin(distances, axis=1)
    return labels, np.maximum(distances[np.arange(len(labels)), labels], 0.0)


def with_spread(encoding: Encoding, sums: Sequence[tuple[np.ndarray, np.ndarray]], rows: int) -> Encoding:
    total = np.sum([s for s, _ in sums], axis=0)
    squares = np.sum([q for _, q in sums], axis=0)
    mean = total / rows
    std = np.sqrt(np.maximum(squares / rows - mean * mean, 0.0))
    return Encoding(
        encoding.fields,
        encoding.numeric,
        encoding.medians,
        encoding.exponents,
        [float(v) for v in mean],
        [float(v) if v > 0 else 1.0 for v in std],
        encoding.categorical,
        encoding.imputed,
        encoding.warnings,
    )
