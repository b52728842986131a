"""The Dask trainer's per-part steps without a cluster: they must agree with the local trainer's
rules (early stopping, category ranking, stratified split) and with LightGBM's own predictions."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from adapters.dask import partitions as tasks
from adapters.gbm.encoding import encode_features
from domain.gbm.training import CategoricalEncoding, FeaturePlan

pytest.importorskip("distributed")


def _frame(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    region = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])
    y = (x + (region == "a") + rng.normal(0, 1, n) > 0.5).astype(int)
    return pl.DataFrame({"x": x, "region": region, "y": y})


PLAN = FeaturePlan(numeric=("x",), categorical=("region",))


def test_the_early_stopping_rule_is_lightgbms() -> None:
    frame = _frame(4000, 1)
    encoded = encode_features(frame, PLAN, CategoricalEncoding.ONEHOT, 10)
    x, y = encoded.matrix, frame["y"].to_numpy().astype(float)
    params = {
        "objective": "binary",
        "verbosity": -1,
        "learning_rate": 0.3,
        "num_leaves": 63,
        "min_data_in_leaf": 1,
        "seed": 3,
        "deterministic": True,
    }
    train = lgb.Dataset(x[:3000], y[:3000])
    booster = lgb.train(
        params,
        train,
        num_boost_round=200,
        valid_sets=[train.create_valid(x[3000:], y[3000:])],
        callbacks=[lgb.early_stopping(5, verbose=False)],
    )
    full = lgb.train(params, lgb.Dataset(x[:3000], y[:3000]), num_boost_round=200)
    part = tasks.EncodedPart(x[:3000], y[:3000], x[3000:], y[3000:])
    losses = tasks.losses_task(part, full, 200, 1.0) / 1000
    assert tasks.early_stopping(losses, 5) == booster.best_iteration
    # One tree at a time adds up to LightGBM's own prediction with all of them.
    raw = np.asarray(full.predict(x[3000:], raw_score=True))
    p = np.clip(1.0 / (1.0 + np.exp(-raw)), 1e-15, 1 - 1e-15)
    last = -np.mean(np.where(y[3000:] > 0, np.log(p), np.log(1.0 - p)))
    assert losses[-1] == pytest.approx(last, rel=1e-9)


def test_categories_are_ranked_over_every_part_as_the_local_encoder_ranks_them() -> None:
    whole = _frame(3000, 2)
    parts = [whole[:1000], whole[1000:2200], whole[2200:]]
    counts = [tasks.count_task(p, "y", PLAN, 0.2, 7, i) for i, p in enumerate(parts)]
    recorded, warnings = tasks.chosen_categories(counts, PLAN, 2)
    local = encode_features(whole, PLAN, CategoricalEncoding.ONEHOT, 2)
    assert recorded["region"] == local.input_features[1]["categories"]
    assert warnings == [w for w in local.warnings if "categories" in w]
    assert sum(c.rows for c in counts) == 3000


def test_the_split_is_stratified_and_reproducible_per_part() -> None:
    labels = np.array([0.0] * 900 + [1.0] * 100)
    mask = tasks.validation_mask(labels, 0.2, 42, 3)
    assert mask.sum() == 200 and labels[mask].sum() == 20
    assert (tasks.validation_mask(labels, 0.2, 42, 3) == mask).all()
    assert not (tasks.validation_mask(labels, 0.2, 42, 4) == mask).all()
    assert not tasks.validation_mask(labels, 0.0, 42, 3).any()


def test_only_a_lost_peer_is_the_clusters_failure() -> None:
    from adapters.dask.training_parts import lost

    assert (
        lost(lgb.basic.LightGBMError("Socket recv error, Connection reset by peer (code: 104)")) is not None
    )
    # A cluster that cannot take a fixed port is a deployment's mistake, reported as it is.
    refused = (
        "'local_listen_port' was provided ... at least one machine in the cluster has multiple Dask workers"
    )
    assert lost(lgb.basic.LightGBMError(refused)) is None
    assert lost(ValueError("a bug")) is None
