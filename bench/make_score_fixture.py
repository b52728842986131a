"""Generate the scoring benchmark's model: 100 trees x 31 leaves, LightGBM binary, plus rows to score.

    .venv/bin/python bench/make_score_fixture.py [--out bench/results/score_model.json]

20 numeric features (three with NaN), one one-hot categorical with 6 categories; 20,000 seeded
training rows. The JSON file holds the modelState, 10,000 raw rows (null = missing) and LightGBM's raw
scores for them, so the benchmarks check parity before they time anything; the .txt beside it is
LightGBM's text model of the same booster.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from adapters.gbm.model_dump import model_state_from_dump

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "score_model.json"
CATEGORIES = ("email", "sms", "push", "web", "app", "call")


def build(n_train: int = 20_000, n_score: int = 10_000, seed: int = 7) -> tuple[str, dict[str, object]]:
    rng = np.random.default_rng(seed)
    n = n_train + n_score
    numeric = rng.normal(size=(n, 20))
    numeric[rng.random(n) < 0.1, 0] = np.nan  # NaN at training time in three columns
    numeric[rng.random(n) < 0.1, 5] = np.nan
    numeric[rng.random(n) < 0.2, 9] = np.nan
    channel = rng.integers(0, len(CATEGORIES), size=n)
    onehot = np.eye(len(CATEGORIES))[channel]
    logit = np.nan_to_num(numeric[:, :8]) @ rng.normal(size=8) + (channel == 2) * 1.5 - (channel == 4)
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(float)
    matrix = np.hstack([numeric, onehot])
    names = [f"x{i}" for i in range(20)] + [f"channel={c}" for c in CATEGORIES]
    inputs: list[dict[str, Any]] = [{"name": f"x{i}", "kind": "numeric"} for i in range(20)]
    inputs.append(
        {"name": "channel", "kind": "categorical", "encoding": "onehot", "categories": list(CATEGORIES)}
    )
    params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.1, "verbose": -1, "seed": seed,
              "num_threads": 1, "deterministic": True, "force_col_wise": True}  # fmt: skip
    internal = [f"f{i}" for i in range(len(names))]
    booster = lgb.train(params, lgb.Dataset(matrix[:n_train], labels[:n_train], feature_name=internal), 100)
    state = model_state_from_dump(
        booster.dump_model(), feature_names=names, input_features=inputs, model_text=booster.model_to_string()
    )
    scoring = matrix[n_train:]
    rows = [
        {**{f"x{i}": (None if np.isnan(v) else float(v)) for i, v in enumerate(numeric[n_train + r])},
         "channel": CATEGORIES[channel[n_train + r]]}
        for r in range(n_score)
    ]  # fmt: skip
    raw = np.asarray(booster.predict(scoring, raw_score=True, num_threads=1))
    leaves = [tree["num_leaves"] for tree in state["trees"]]
    return booster.model_to_string(), {
        "description": f"{len(leaves)} trees, {max(leaves)} leaves max, {len(names)} columns",
        "modelState": state,
        "rows": rows,
        "rawMargin": raw.tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    started = time.perf_counter()
    model_text, fixture = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, allow_nan=False), encoding="utf-8")
    # LightGBM's own text model, so bench/score_py.py times LightGBM on the very same trees.
    args.out.with_suffix(".txt").write_text(model_text, encoding="utf-8")
    print(f"wrote {args.out} ({fixture['description']}) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
