"""`includeParityFixture`: the rows shipped with a model carry LightGBM's own scores, and the
reference scorer, fed the raw rows as the platform would, reproduces them exactly."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from adapters.frames import PolarsDataset
from adapters.gbm.trainer import LightGbmTrainer
from domain.gbm.scorer import load_model
from domain.gbm.training import CategoricalEncoding, GbmParams, GbmTrainingSpec, plan_features
from domain.progress import no_progress


def _frame(seed: int = 3, n: int = 1500) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.1] = np.nan
    count = rng.integers(0, 5, size=n)
    region = rng.choice(["north", "south", "east", "west"], size=n)
    zone = rng.choice([1.0, 2.0, 3.0], size=n)
    logit = np.nan_to_num(x) + (region == "east") - 0.5 * count + (zone == 2.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pl.DataFrame(
        {"x": x, "count": count, "region": region, "zone": zone, "member": rng.random(n) < 0.3, "y": y}
    )


@pytest.mark.parametrize("encoding", list(CategoricalEncoding))
def test_fixture_scores_are_lightgbms_and_the_reference_scorer_reproduces_them(
    encoding: CategoricalEncoding,
) -> None:
    spec = GbmTrainingSpec(
        label="y",
        categorical_features=("region", "zone"),
        categorical_encoding=encoding,
        params=GbmParams(num_iterations=40, min_data_in_leaf=10),
        include_parity_fixture=True,
    )
    dataset = PolarsDataset(_frame())
    outcome = LightGbmTrainer(1).train(dataset, spec, plan_features(spec, dataset.schema), no_progress)
    fixture = outcome.parity_fixture
    assert fixture is not None
    rows, raw = fixture.rows, fixture.raw_scores
    assert len(rows) == len(raw) == len(fixture.scores) > 200
    # Edge rows are there: a missing field, an infinity and an unseen category.
    assert any(row["x"] is None for row in rows)
    assert any(row["x"] == "Infinity" for row in rows)
    assert any(row["region"] == "__unseen_category__" for row in rows)
    model = load_model(outcome.model_state)
    for row, expected, probability in zip(rows, raw, fixture.scores, strict=True):
        score = model.score(row)
        assert score.raw_margin == pytest.approx(expected, abs=1e-12)
        assert score.score == pytest.approx(probability, abs=1e-12)
    assert not any(isinstance(v, float) and math.isnan(v) for row in rows for v in row.values())
