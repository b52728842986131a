"""Rows with LightGBM's own raw scores, shipped with a model so the platform can check its scorer
against them before activating the model: a seeded sample of the training rows, plus edge rows
(each field missing, extreme, unseen category)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from adapters.gbm.encoding import encode_features
from domain.gbm.training import CategoricalEncoding, FeaturePlan, ParityFixture

SAMPLE_ROWS = 200
EDGE_FIELDS = 50
UNSEEN_TEXT = "__unseen_category__"
UNSEEN_NUMBER = 987_654_321.0


def _scorer_row_value(value: Any) -> Any:
    """The scorers' row convention: null is missing; infinities as the strings JSON lacks."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    return value


def _edge_rows(base: Mapping[str, Any], frame: pl.DataFrame, plan: FeaturePlan) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [dict.fromkeys(plan.inputs)]
    for name in plan.numeric[:EDGE_FIELDS]:
        for value in (None, 0.0, 1e300, -1e300, math.inf, -math.inf):
            rows.append({**base, name: value})
    for name in plan.categorical[:EDGE_FIELDS]:
        rows.append({**base, name: None})
        unseen = _unseen(frame.schema[name])
        if unseen is not None:
            rows.append({**base, name: unseen})
    return rows


def _unseen(dtype: pl.DataType) -> str | float | None:
    """A category the training data cannot hold, in the column's own type; None when the type has
    none to spare (a boolean category has only two values, and an 8-bit one cannot hold 987654321:
    either made the fixture's frame fail to build, an INTERNAL answer)."""
    if dtype == pl.String:
        return UNSEEN_TEXT
    if dtype.is_float() or dtype in (pl.Int32, pl.Int64, pl.UInt32, pl.UInt64):
        return UNSEEN_NUMBER
    return None


def parity_fixture(
    frame: pl.DataFrame,
    plan: FeaturePlan,
    encoding: CategoricalEncoding,
    input_features: list[dict[str, Any]],
    booster: lgb.Booster,
    num_iteration: int,
    seed: int,
) -> ParityFixture:
    inputs = frame.select(plan.inputs).with_columns(pl.col(name).cast(pl.Float64) for name in plan.numeric)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(inputs.height, size=min(inputs.height, SAMPLE_ROWS), replace=False))
    sample = inputs[picked].to_dicts()
    rows = sample + _edge_rows(sample[0], inputs, plan)
    fixture_frame = pl.DataFrame(rows, schema=inputs.schema, strict=False)
    recorded = {f["name"]: list(f["categories"]) for f in input_features if f["kind"] == "categorical"}
    matrix = encode_features(fixture_frame, plan, encoding, max_categories=0, recorded=recorded).matrix
    raw = booster.predict(matrix, raw_score=True, num_iteration=num_iteration)
    probability = booster.predict(matrix, num_iteration=num_iteration)
    return ParityFixture(
        rows=tuple({name: _scorer_row_value(value) for name, value in row.items()} for row in rows),
        raw_scores=tuple(float(v) for v in raw),
        scores=tuple(float(v) for v in probability),
    )
