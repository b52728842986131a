"""Drift references for tests, built from rows exactly as formats.md describes them (deciles of the
non-missing values, numpy's "linear" method; shares over all rows), independently of the trainer,
so the drift tests run whether or not the model they trained already carries one."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from domain.gbm.model_state import attach_blocks, content_hash
from domain.gbm.reference import field_buckets
from domain.gbm.scorer import load_model

DECILES = [i / 10 for i in range(1, 10)]


def edges_of(values: Sequence[float]) -> list[float]:
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return []
    return [float(e) for e in np.unique(np.quantile(finite, DECILES, method="linear"))]


def _shares(entry: dict[str, Any], values: Sequence[Any]) -> list[float]:
    counts = field_buckets(entry, values)
    return [count / len(values) for count in counts]


def numeric_entry(name: str, values: Sequence[Any]) -> dict[str, Any]:
    numbers = [None if v is None else float(v) for v in values]
    entry: dict[str, Any] = {
        "name": name,
        "kind": "numeric",
        "edges": edges_of(numbers),
        "missing_share": 0.0,
    }
    entry["shares"] = [0.0] * (len(entry["edges"]) + 1)
    shares = _shares(entry, values)
    entry["shares"], entry["missing_share"] = shares[:-1], shares[-1]
    return entry


def categorical_entry(name: str, categories: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "kind": "categorical",
        "categories": list(categories),
        "shares": [0.0] * len(categories),
        "other_share": 0.0,
        "missing_share": 0.0,
    }
    shares = _shares(entry, values)
    entry["shares"], entry["other_share"], entry["missing_share"] = shares[:-2], shares[-2], shares[-1]
    return entry


def reference_for(
    state: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    score_rows: Sequence[Mapping[str, Any]],
    performance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    fields = []
    for spec in state["input_features"]:
        values = [row.get(spec["name"]) for row in rows]
        if spec["kind"] == "numeric":
            fields.append(numeric_entry(spec["name"], values))
        else:
            fields.append(categorical_entry(spec["name"], spec["categories"], values))
    model = load_model(state)
    scores = [model.score(row).score for row in score_rows]
    score: dict[str, Any] = {"rows": len(scores), "source": "validation", "edges": edges_of(scores)}
    score["shares"] = [0.0] * (len(score["edges"]) + 1)
    score["shares"] = _shares(score, scores)
    reference: dict[str, Any] = {"rows": len(rows), "fields": fields, "score": score}
    if performance is not None:
        reference["performance"] = dict(performance)
    return reference


def with_reference(
    state: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    score_rows: Sequence[Mapping[str, Any]],
    performance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The state with a reference built here from `rows` (replacing any it carries)."""
    plain = {key: value for key, value in copy.deepcopy(dict(state)).items() if key != "reference"}
    plain["schema_version"] = 2 if "calibration" in plain else 1
    plain["content_hash"] = content_hash(plain)
    return attach_blocks(plain, reference=reference_for(plain, rows, score_rows, performance))
