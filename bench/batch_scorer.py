"""Rows per second of the numpy batch scorer (adapters/gbm/batch_scorer.py, what POST /analyze/drift
scores with) against the pure-Python reference scorer and LightGBM's own predict, one thread each, on
100,000 rows x 20 numeric fields (5% missing) x 100 trees of 31 leaves. It also checks that the
batch scorer's raw margins equal both to the last bit.

    PYTHONPATH=src .venv/bin/python bench/batch_scorer.py
"""

from __future__ import annotations

import time

import lightgbm as lgb
import numpy as np
import polars as pl

from adapters.gbm.batch_scorer import BatchScorer
from adapters.gbm.model_dump import model_state_from_dump
from domain.gbm.scorer import load_model

ROWS, FIELDS, TREES, PYTHON_ROWS = 100_000, 20, 100, 5_000


def main() -> None:
    rng = np.random.default_rng(0)
    names = [f"x{i}" for i in range(FIELDS)]
    train = rng.normal(size=(20_000, FIELDS))
    train[rng.random(train.shape) < 0.05] = np.nan
    y = (rng.random(len(train)) < 1 / (1 + np.exp(-np.nansum(train[:, :5], axis=1)))).astype(float)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "num_leaves": 31, "seed": 1}
    booster = lgb.train(params, lgb.Dataset(train, y, feature_name=[f"f{i}" for i in range(FIELDS)]), TREES)
    state = model_state_from_dump(
        booster.dump_model(),
        feature_names=names,
        input_features=[{"name": name, "kind": "numeric"} for name in names],
        model_text=booster.model_to_string(),
    )
    rows = rng.normal(size=(ROWS, FIELDS))
    rows[rng.random(rows.shape) < 0.05] = np.nan
    frame = pl.DataFrame({name: rows[:, i] for i, name in enumerate(names)})

    started = time.perf_counter()
    scored = BatchScorer(state).score_frame(frame)
    batch = time.perf_counter() - started
    model = load_model(state)
    sample = frame.head(PYTHON_ROWS).to_dicts()
    started = time.perf_counter()
    python = [model.raw_margin(row) for row in sample]
    pure = time.perf_counter() - started
    started = time.perf_counter()
    lightgbm = booster.predict(rows, raw_score=True, num_threads=1)
    native = time.perf_counter() - started
    assert np.array_equal(scored.raw_margin[:PYTHON_ROWS], python)
    assert np.array_equal(scored.raw_margin, lightgbm)
    print(f"{ROWS:,} rows x {FIELDS} fields x {TREES} trees, one thread")
    print(f"batch scorer (frame in, scores out): {ROWS / batch:>10,.0f} rows/s ({batch:.2f} s)")
    print(f"pure-Python reference scorer:        {PYTHON_ROWS / pure:>10,.0f} rows/s ({PYTHON_ROWS:,} rows)")
    print(f"LightGBM predict(raw_score=True):    {ROWS / native:>10,.0f} rows/s")


if __name__ == "__main__":
    main()
