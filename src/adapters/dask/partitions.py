"""What each Dask worker does with its part of a table: read it from PostgreSQL, count what the
global choices need (label, classes, categories), encode it with the categories chosen for all the
parts, split it, and score it with the trained model. Module-level functions: the workers import
them by name (the same image), so only the read plan, small counts and the model travel.

The encoding is the local trainer's (adapters/gbm/encoding.py) with the categories recorded from
the whole table: the counts of every part are added up and ranked by the local rule (most frequent
first, ties by name), so a category is kept or dropped as if one process had seen every row.

The validation split: in each part, `validation_fraction` of each class, drawn with a generator
seeded by the request's seed and the part's index (stratified like the local split, reproducible
for the same table and partitioning; not the same rows as the local split, which would need every
label in one place).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import polars as pl

from adapters.gbm.encoding import encode_features, label_vector
from adapters.gbm.metrics import _EPS
from adapters.postgres.partition_read import Pages, TableRead, read_part
from domain.gbm.scorer import category_key
from domain.gbm.training import CategoricalEncoding, FeaturePlan


@dataclass(frozen=True)
class PartCounts:
    rows: int
    positives: int
    valid_rows: int
    # Per categorical column: rows per category key (the scorers' key), and values that cannot be one.
    categories: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    unusable: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class EncodedPart:
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray


def read_task(read: TableRead, pages: Pages | None, snapshot: str | None) -> pl.DataFrame:
    return read_part(read, pages, snapshot=snapshot)


def height(frame: pl.DataFrame) -> int:
    return frame.height


def head(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    return frame.head(n)


def training_sample(
    frame: pl.DataFrame, columns: list[str], label: str, fraction: float, seed: int, index: int, keep: float
) -> pl.DataFrame:
    """`columns` of the part's training rows (the split `encode_task` makes), a seeded `keep` share
    of them: what the model's drift reference summarises."""
    training = ~validation_mask(label_vector(frame, label), fraction, seed, index)
    if keep < 1.0:
        training &= np.random.default_rng([seed, index, 1]).random(frame.height) < keep
    return frame.select(columns).filter(pl.Series(training))


def validation_mask(labels: np.ndarray, fraction: float, seed: int, index: int) -> np.ndarray:
    mask = np.zeros(len(labels), dtype=bool)
    if fraction <= 0:
        return mask
    rng = np.random.default_rng([seed, index])
    for value in (0.0, 1.0):
        rows = np.flatnonzero(labels == value)
        chosen = rng.choice(rows, size=round(len(rows) * fraction), replace=False)
        mask[chosen] = True
    return mask


def count_task(
    frame: pl.DataFrame, label: str, plan: FeaturePlan, fraction: float, seed: int, index: int
) -> PartCounts:
    y = label_vector(frame, label)  # a bad label fails here, with the local trainer's message
    categories: dict[str, dict[str, int]] = {}
    unusable: dict[str, int] = {}
    for name in plan.categorical:
        column = frame.get_column(name)
        counts = column.drop_nulls().value_counts(name="__n")
        keyed: dict[str, int] = {}
        bad = 0
        for value, n in zip(
            counts.get_column(name).to_list(), counts.get_column("__n").to_list(), strict=True
        ):
            key = category_key(value)
            if key is None:
                bad += n
            else:
                keyed[key] = keyed.get(key, 0) + n
        categories[name], unusable[name] = keyed, bad
    valid = int(validation_mask(y, fraction, seed, index).sum())
    return PartCounts(len(y), int(y.sum()), valid, categories, unusable)


def chosen_categories(
    parts: list[PartCounts], plan: FeaturePlan, limit: int
) -> tuple[dict[str, list[str]], list[str]]:
    """The categories every part encodes with, and the local encoder's warnings for them."""
    recorded: dict[str, list[str]] = {}
    warnings: list[str] = []
    for name in plan.categorical:
        total: dict[str, int] = {}
        unusable = 0
        for part in parts:
            unusable += part.unusable.get(name, 0)
            for key, n in part.categories.get(name, {}).items():
                total[key] = total.get(key, 0) + n
        ranked = sorted(total.items(), key=lambda item: (-item[1], item[0]))
        recorded[name] = [key for key, _ in ranked[:limit]]
        if unusable:
            warnings.append(
                f"'{name}': {unusable} non-integral number(s) cannot be categories; treated as missing"
            )
        if len(total) > len(recorded[name]):
            warnings.append(
                f"'{name}' has {len(total)} categories; the {len(recorded[name])} most frequent are kept, "
                "the others score like an unseen category"
            )
    return recorded, warnings


def encode_task(
    frame: pl.DataFrame,
    label: str,
    plan: FeaturePlan,
    encoding: CategoricalEncoding,
    recorded: Mapping[str, list[str]],
    fraction: float,
    seed: int,
    index: int,
) -> EncodedPart:
    y = label_vector(frame, label)
    x = encode_features(frame, plan, encoding, 0, recorded=recorded).matrix
    valid = validation_mask(y, fraction, seed, index)
    return EncodedPart(x[~valid], y[~valid], x[valid], y[valid])


def x_train(part: EncodedPart) -> np.ndarray:
    return part.x_train


def y_train(part: EncodedPart) -> np.ndarray:
    return part.y_train


def _probability(raw: np.ndarray, sigmoid: float) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.asarray(1.0 / (1.0 + np.exp(-sigmoid * raw)))


def _log_loss_sum(y: np.ndarray, p: np.ndarray) -> float:
    clipped = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.sum(np.log(np.where(y > 0, clipped, 1.0 - clipped))))


def losses_task(part: EncodedPart, booster: lgb.Booster, trees: int, sigmoid: float) -> np.ndarray:
    """The validation rows' summed log loss after each of the first `trees` trees: what early
    stopping reads, added up over the parts. One tree at a time, accumulated: the cost of one
    prediction with every tree."""
    losses = np.zeros(trees)
    if not len(part.y_valid):
        return losses
    raw = np.zeros(len(part.y_valid))
    for i in range(trees):
        raw += np.asarray(booster.predict(part.x_valid, start_iteration=i, num_iteration=1, raw_score=True))
        losses[i] = _log_loss_sum(part.y_valid, _probability(raw, sigmoid))
    return losses


def scores_task(
    part: EncodedPart,
    booster: lgb.Booster,
    used: int,
    on_validation: bool,
    keep: float,
    seed: int,
    index: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The labels and probabilities of the evaluated rows (validation, else training) with `used`
    trees; a seeded `keep` fraction of them when the client takes a sample."""
    x, y = (part.x_valid, part.y_valid) if on_validation else (part.x_train, part.y_train)
    if keep < 1.0 and len(y):
        rows = np.flatnonzero(np.random.default_rng([seed, index, 1]).random(len(y)) < keep)
        x, y = x[rows], y[rows]
    if not len(y):
        return y, np.zeros(0)
    return y, np.asarray(booster.predict(x, num_iteration=used))


def early_stopping(losses: np.ndarray, rounds: int | None) -> int:
    """The trees LightGBM's early stopping would keep on these per-tree losses: the best so far, once
    `rounds` trees in a row have not improved on it (or the best of all)."""
    best, best_at = np.inf, 0
    for i, loss in enumerate(losses):
        if loss < best:
            best, best_at = float(loss), i
        elif rounds is not None and i - best_at >= rounds:
            break
    return best_at + 1
