"""The trainer's dump of a booster is LightGBM's own `dump_model()`, object for object, for models
smaller and larger than LightGBM's first 1 MiB buffer and for fewer iterations than were trained."""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pytest

from adapters.gbm.booster_dump import dump_model


@pytest.mark.parametrize(("trees", "leaves"), [(3, 4), (120, 31)])
def test_the_dump_equals_lightgbms_own(trees: int, leaves: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 6))
    y = (x[:, 0] + rng.normal(size=4000) > 0).astype(float)
    params = {
        "objective": "binary",
        "verbosity": -1,
        "num_leaves": leaves,
        "num_threads": 1,
        "min_data_in_leaf": 2,
    }
    booster = lgb.train(params, lgb.Dataset(x, y), trees)
    for iterations in (trees, max(1, trees // 2)):
        expected = booster.dump_model(num_iteration=iterations)
        expected.pop("pandas_categorical")
        text = booster.model_to_string(num_iteration=iterations)
        assert dump_model(booster, iterations, text) == expected
        # No hint: the first buffer is 1 MiB, and a larger dump takes a second, larger one.
        assert dump_model(booster, iterations, "") == expected
    dumped_bytes = len(json.dumps(booster.dump_model()))
    assert dumped_bytes > (1 << 20) if trees > 100 else dumped_bytes < (1 << 20)
