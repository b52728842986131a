"""Calibrated models with a drift reference, built from the seeded cases of gbm_cases, and the Python
domain's drift of a batch: the inputs and the expectations of the JS scorer's calibration and drift
parity (make_js_fixtures.py writes them as fixtures; test_js_drift_parity.py checks them live).

The blocks are built here with numpy and scikit-learn, exactly in formats.md's shape (the worker's
own builders live in adapters/gbm; these are independent of them on purpose), and attached with
`domain.gbm.model_state.attach_blocks`. The fixture's calibration is fitted on the training rows: it
only has to be a valid calibration; where the worker fits it is the trainer's business.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gbm_cases import Case, Recipe, _labels, _raw_rows, from_json_number, to_json_number
from sklearn.isotonic import IsotonicRegression

from domain.gbm.model_state import attach_blocks
from domain.gbm.reference import expected_shares, field_buckets, measure
from domain.gbm.scorer import load_model
from domain.gbm.values import category_key

DECILES = np.arange(1, 10) / 10


def training_data(recipe: Recipe) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The rows and labels build_case trained on (the same draws from the same seed)."""
    rng = np.random.default_rng(recipe.seed)
    rows = _raw_rows(recipe, rng, recipe.n_rows)
    return rows, _labels(recipe, rng, rows)


def fit_isotonic(probability: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    fit = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1, increasing=True)
    fit.fit(probability, labels)
    return {
        "method": "isotonic",
        "fitted_on": len(labels),
        "source": "validation",
        "x": fit.X_thresholds_.tolist(),
        "y": fit.y_thresholds_.tolist(),
    }


def fit_platt(margin: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Unpenalised logistic regression of the label on the margin, by Newton's method."""
    design = np.column_stack([margin, np.ones_like(margin)])
    coef = np.zeros(2)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ coef)))
        step = np.linalg.solve(design.T @ (design * (p * (1 - p))[:, None]), design.T @ (labels - p))
        coef += step
        if np.max(np.abs(step)) < 1e-12:
            break
    a, b = float(coef[0]), float(coef[1])
    assert a > 0, "the trees rank the rows backwards: no Platt calibration"
    return {"method": "platt", "fitted_on": len(labels), "source": "cross_fitted", "a": a, "b": b}


def _edges(values: np.ndarray) -> list[float]:
    if values.size == 0:
        return []
    quantiles = np.quantile(values, DECILES, method="linear")
    return [float(e) for e in np.unique(quantiles[np.isfinite(quantiles)])]


def numeric_entry(name: str, values: Sequence[Any]) -> dict[str, Any]:
    x = np.array([from_json_number(v) for v in values], dtype=np.float64)
    missing = np.isnan(x)
    present = x[~missing]
    edges = _edges(present)
    bins = np.searchsorted(np.array(edges), present, side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1)
    return {
        "name": name,
        "kind": "numeric",
        "edges": edges,
        "shares": (counts / len(x)).tolist(),
        "missing_share": float(missing.sum() / len(x)),
    }


def categorical_entry(spec: Mapping[str, Any], values: Sequence[Any]) -> dict[str, Any]:
    categories: list[str] = spec["categories"]
    keys = [None if v is None else category_key(v) for v in values]
    counts = [keys.count(category) for category in categories]
    missing = sum(1 for v in values if v is None)
    other = len(values) - sum(counts) - missing
    n = len(values)
    return {
        "name": spec["name"],
        "kind": "categorical",
        "categories": list(categories),
        "shares": [c / n for c in counts],
        "other_share": other / n,
        "missing_share": missing / n,
    }


def build_reference(
    state: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], scores: Sequence[float]
) -> dict[str, Any]:
    """formats.md's reference: every input field over `rows`, the score over `scores`."""
    fields = []
    for spec in state["input_features"]:
        values = [row.get(spec["name"]) for row in rows]
        if spec["kind"] == "numeric":
            fields.append(numeric_entry(spec["name"], values))
        else:
            fields.append(categorical_entry(spec, values))
    score = numeric_entry("score", scores)
    return {
        "rows": len(rows),
        "fields": fields,
        "score": {
            "rows": len(scores),
            "source": "training",
            "edges": score["edges"],
            "shares": score["shares"],
        },
    }


def performance(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import log_loss, roc_auc_score

    bins = np.minimum(np.floor(scores * 10), 9).astype(int)
    ece = sum(
        (bins == b).sum() / len(scores) * abs(labels[bins == b].mean() - scores[bins == b].mean())
        for b in range(10)
        if (bins == b).any()
    )
    return {
        "rows": len(labels),
        "auc": float(roc_auc_score(labels, scores)),
        "logloss": float(log_loss(labels, scores)),
        "ece": float(ece),
    }


def calibrated_case(case: Case, method: str, *, with_performance: bool = False) -> dict[str, Any]:
    """The case's modelState with a calibration of `method` and a reference, version 2."""
    rows, labels = training_data(case.recipe)
    plain = load_model(case.state)
    margin = np.array([plain.raw_margin(row) for row in rows])
    probability = np.array([plain.probability(m) for m in margin])
    calibration = fit_isotonic(probability, labels) if method == "isotonic" else fit_platt(margin, labels)
    state = attach_blocks(copy.deepcopy(case.state), calibration=calibration)
    calibrated = load_model(state)
    scores = np.array([calibrated.calibrated(m) for m in margin])
    reference = build_reference(state, rows, scores.tolist())
    if with_performance:
        reference["performance"] = performance(labels, scores)
    return attach_blocks(state, reference=reference)


def python_drift(state: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The Python domain's drift of `rows`, in driftPsi's shape (scores by the Python scorer)."""
    model = load_model(state)
    reference = state["reference"]
    fields = []
    for entry in reference["fields"]:
        drift = measure(entry, field_buckets(entry, [row.get(entry["name"]) for row in rows]))
        fields.append(
            {
                "field": entry["name"],
                "kind": entry["kind"],
                "psi": drift.psi,
                "ks": drift.ks,
                "missingShareChange": drift.missing_share_change,
                "status": drift.status,
            }
        )
    scores = [model.score(row).score for row in rows]
    drift = measure(reference["score"], field_buckets(reference["score"], scores))
    assert len(expected_shares(reference["score"])) == len(reference["score"]["shares"])
    return {
        "rows": len(rows),
        "fields": fields,
        "score": {"psi": drift.psi, "ks": drift.ks, "status": drift.status},
    }


def bootstrap(rows: Sequence[Mapping[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """`n` rows drawn with replacement: a batch from the training distribution itself."""
    picks = np.random.default_rng(seed).integers(0, len(rows), size=n)
    return [dict(rows[int(i)]) for i in picks]


def shifted(rows: Sequence[Mapping[str, Any]], field: str, by: float) -> list[dict[str, Any]]:
    """The rows with `field` moved by `by` where it holds a finite number."""
    out = []
    for row in rows:
        value = row.get(field)
        moved = isinstance(value, float | int) and math.isfinite(value)
        out.append({**row, field: to_json_number(value + by)} if moved else dict(row))
    return out


def swapped(rows: Sequence[Mapping[str, Any]], field: str, first: str, second: str) -> list[dict[str, Any]]:
    """The rows with two categories of `field` exchanged: their shares flip."""
    exchange = {first: second, second: first}
    return [{**row, field: exchange.get(row.get(field), row.get(field))} for row in rows]


def spread(rows: Sequence[Mapping[str, Any]], field: str) -> float:
    """The standard deviation of `field`'s finite values."""
    values = np.array([from_json_number(row.get(field)) for row in rows])
    finite = values[np.isfinite(values)]
    scale = float(np.max(np.abs(finite), initial=0.0)) or 1.0
    return float(np.std(finite / scale)) * scale  # scaled: the square of 1e200 overflows
