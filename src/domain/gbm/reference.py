"""`modelState.reference`: the training distributions a model's drift is measured against, and the
measures themselves (PSI, KS, status). Pure Python so that the JavaScript scorer can mirror every rule.

Each input field has a bucket vector whose shares, over all training rows, sum to 1:

- numeric: `shares` of the bins cut at `edges` (bin i holds `edges[i-1] < v <= edges[i]`; +-inf fall
  in the end bins), then `missing_share` (null or NaN);
- categorical: `shares` of the recorded `categories`, then `other_share` (a value whose category is
  not recorded), then `missing_share` (null).

`score` bins the model's own score (calibrated when the model is) on the validation rows the same way,
without a missing share; its edges are placed midway between distinct scores (the worker's builder,
`adapters.gbm.reference`), so that no score lies on an edge and a scorer whose `exp` rounds an ulp
differently bins every row alike. A batch of new rows is counted into the same buckets and compared:

- PSI = sum over buckets of (a - e) * ln(a / e), where a share below `PSI_EPSILON` (an empty bin
  included) counts as `PSI_EPSILON`, with no renormalising;
- status from PSI alone: below 0.1 stable, from 0.1 watch, from 0.25 drifted (the usual bands);
- KS at the reference's bin edges over the non-missing values: the largest gap between the two
  cumulative shares at an edge. It is a lower bound of the exact two-sample statistic (the reference
  keeps no raw values); null for categorical fields, which have no order.

Size: at most `MAX_EDGES + 1` bins per numeric field and categories + 2 per categorical one.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

from domain.gbm.errors import UnsupportedModel, unsupported
from domain.gbm.values import as_number, category_key

PSI_EPSILON: Final = 1e-4
STABLE_BELOW: Final = 0.1
DRIFTED_FROM: Final = 0.25
STABLE: Final = "stable"
WATCH: Final = "watch"
DRIFTED: Final = "drifted"
# Deciles: 9 inner cut points, 10 bins.
MAX_EDGES: Final = 9
SCORE_SOURCES: Final = frozenset({"validation", "training"})
_SHARE_SUM_TOLERANCE: Final = 1e-9
_FIELD: Final = "reference"


def _refuse(message: str) -> UnsupportedModel:
    return unsupported(f"reference: {message}", _FIELD)


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_edges(edges: Any, where: str) -> None:
    if not isinstance(edges, list) or len(edges) > MAX_EDGES or not all(_finite(e) for e in edges):
        raise _refuse(f"{where}: edges must be a list of at most {MAX_EDGES} finite numbers")
    if any(later <= earlier for earlier, later in itertools.pairwise(edges)):
        raise _refuse(f"{where}: edges must be strictly increasing")


def _check_shares(vector: Sequence[Any], where: str) -> None:
    if not all(_finite(share) and 0.0 <= share <= 1.0 for share in vector):
        raise _refuse(f"{where}: shares must be finite numbers in [0, 1]")
    if abs(math.fsum(vector) - 1.0) > _SHARE_SUM_TOLERANCE:
        raise _refuse(f"{where}: shares must sum to 1")


def _check_binned(entry: Mapping[str, Any], where: str, extra: Sequence[str]) -> None:
    _check_edges(entry.get("edges"), where)
    shares = entry.get("shares")
    if not isinstance(shares, list) or len(shares) != len(entry["edges"]) + 1:
        raise _refuse(f"{where}: shares must hold one share per bin (len(edges) + 1)")
    _check_shares([*shares, *(entry.get(key) for key in extra)], where)


def validate_reference(block: Any, input_features: Sequence[Mapping[str, Any]]) -> None:
    """Raise `UnsupportedModel` unless `block` is a reference for exactly these input features."""
    if not isinstance(block, Mapping):
        raise _refuse("must be an object")
    if not _count(block.get("rows")):
        raise _refuse("rows must be a non-negative integer")
    fields = block.get("fields")
    if not isinstance(fields, list) or len(fields) != len(input_features):
        raise _refuse("fields must hold one entry per input feature, in input_features order")
    for entry, spec in zip(fields, input_features, strict=True):
        name = spec.get("name")
        where = f"field {name!r}"
        if not isinstance(entry, Mapping) or (entry.get("name"), entry.get("kind")) != (
            name,
            spec.get("kind"),
        ):
            raise _refuse(f"{where}: entry must carry the input feature's name and kind, in order")
        if entry["kind"] == "numeric":
            _check_binned(entry, where, ("missing_share",))
            continue
        categories = entry.get("categories")
        if not isinstance(categories, list) or categories != spec.get("categories"):
            raise _refuse(f"{where}: categories must equal the input feature's categories")
        shares = entry.get("shares")
        if not isinstance(shares, list) or len(shares) != len(categories):
            raise _refuse(f"{where}: shares must hold one share per category")
        _check_shares([*shares, entry.get("other_share"), entry.get("missing_share")], where)
    score = block.get("score")
    if not isinstance(score, Mapping) or not _count(score.get("rows")):
        raise _refuse("score must be an object with a non-negative integer rows")
    if score.get("source") not in SCORE_SOURCES:
        raise _refuse(f"score: source must be one of {sorted(SCORE_SOURCES)}")
    _check_binned(score, "score", ())
    performance = block.get("performance")
    if performance is not None:
        _check_performance(performance)


def _check_performance(performance: Any) -> None:
    if not isinstance(performance, Mapping) or not _count(performance.get("rows")):
        raise _refuse("performance must be an object with a non-negative integer rows")
    for key in ("logloss", "ece"):
        if not _finite(performance.get(key)):
            raise _refuse(f"performance: {key} must be a finite number")
    auc = performance.get("auc")
    if auc is not None and not _finite(auc):
        raise _refuse("performance: auc must be a finite number or null")


def numeric_bin(edges: Sequence[float], value: float) -> int:
    """The bin of a non-missing value: the number of edges strictly below it."""
    return bisect.bisect_left(edges, value)


def expected_shares(entry: Mapping[str, Any]) -> list[float]:
    """The reference's bucket vector of a field entry (or of `score`), in bucket order."""
    shares = [float(share) for share in entry["shares"]]
    if entry.get("kind") == "categorical":
        return [*shares, float(entry["other_share"]), float(entry["missing_share"])]
    if "missing_share" in entry:
        return [*shares, float(entry["missing_share"])]
    return shares


def field_buckets(entry: Mapping[str, Any], values: Iterable[Any]) -> list[int]:
    """Counts of raw values (as a row holds them; None = missing) in the entry's bucket vector."""
    counts = [0] * len(expected_shares(entry))
    if entry.get("kind") == "categorical":
        position = {category: index for index, category in enumerate(entry["categories"])}
        other, missing = len(position), len(position) + 1
        for value in values:
            if value is None:
                counts[missing] += 1
                continue
            key = category_key(value)
            counts[position.get(key, other) if key is not None else other] += 1
        return counts
    edges = entry["edges"]
    has_missing = "missing_share" in entry
    for value in values:
        number = as_number(value, str(entry.get("name", "score")))
        if math.isnan(number):
            if not has_missing:
                raise ValueError("a score cannot be missing")
            counts[-1] += 1
        else:
            counts[numeric_bin(edges, number)] += 1
    return counts


def psi(expected: Sequence[float], counts: Sequence[int]) -> float:
    """Population stability index of a batch's bucket counts against the reference's shares."""
    total = sum(counts)
    if total <= 0:
        raise ValueError("PSI needs at least one row")
    value = 0.0
    for share, count in zip(expected, counts, strict=True):
        e = max(share, PSI_EPSILON)
        a = max(count / total, PSI_EPSILON)
        value += (a - e) * math.log(a / e)
    return value


def binned_ks(expected: Sequence[float], counts: Sequence[int]) -> float | None:
    """KS at the bin edges between the reference's non-missing bin shares and a batch's non-missing
    bin counts (both without the missing bucket); None when either side has no value."""
    expected_total = math.fsum(expected)
    actual_total = sum(counts)
    if expected_total <= 0 or actual_total <= 0:
        return None
    largest = 0.0
    expected_cumulative = 0.0
    actual_cumulative = 0
    for share, count in zip(expected[:-1], counts[:-1], strict=True):
        expected_cumulative += share
        actual_cumulative += count
        largest = max(largest, abs(expected_cumulative / expected_total - actual_cumulative / actual_total))
    return largest


def drift_status(value: float) -> str:
    if value < STABLE_BELOW:
        return STABLE
    return WATCH if value < DRIFTED_FROM else DRIFTED


@dataclass(frozen=True)
class Drift:
    """One field's (or the score's) drift. `missing_share_change` is None for the score."""

    psi: float
    ks: float | None
    missing_share_change: float | None
    status: str


def measure(entry: Mapping[str, Any], counts: Sequence[int]) -> Drift:
    """The drift of a batch counted into `entry`'s buckets (`field_buckets`' layout)."""
    expected = expected_shares(entry)
    value = psi(expected, counts)
    total = sum(counts)
    categorical = entry.get("kind") == "categorical"
    has_missing = "missing_share" in entry
    ks = None
    if not categorical:
        binned = len(entry["shares"])
        ks = binned_ks(expected[:binned], counts[:binned])
    change = counts[-1] / total - float(entry["missing_share"]) if has_missing else None
    return Drift(psi=value, ks=ks, missing_share_change=change, status=drift_status(value))
