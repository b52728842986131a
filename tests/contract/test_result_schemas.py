"""Every analysis result, as presented, matches its schema in openapi.yaml (what the platform reads from
/status)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import make_blobs

from adapters.content.analyzer import SklearnContentAnalyzer
from adapters.drift.analyzer import PolarsDriftAnalyzer
from adapters.frames import PolarsDataset
from adapters.gbm.trainer import LightGbmTrainer
from adapters.policies.analyzer import PolarsPolicyAnalyzer
from adapters.segmentation.segmenter import SklearnSegmenter
from domain.content import ContentSpec
from domain.drift import DriftSpec
from domain.gbm.training import GbmParams, GbmTrainingSpec, plan_features
from domain.policies import PolicySpec
from domain.segmentation import SegmentationSpec
from entrypoints.presenters.content import present_content_analysis
from entrypoints.presenters.jobs import JobResultPresenter
from support.drift import reference_for, with_reference
from support.schemas import schema_errors, validator


def _check(name: str, result: dict[str, Any]) -> None:
    errors = schema_errors(name, result)
    assert not errors, errors[:5]
    # The other result schemas must not accept it: the Job's `result` is a oneOf.
    for other in {
        "SegmentationResult",
        "PolicyAnalysisResult",
        "ContentAnalysisResult",
        "DriftAnalysisResult",
    } - {name}:
        assert not validator(other).is_valid(result), f"{name} result also matches {other}"


def _nothing(fraction: float, message: str = "") -> None:
    pass


@pytest.mark.parametrize("algorithm", ["kmeans", "dbscan"])
def test_segmentation_results_match_the_schema(algorithm: str) -> None:
    x, _ = make_blobs(n_samples=600, centers=3, n_features=3, random_state=4)
    region = np.random.default_rng(4).choice(["north", "south"], 600).tolist()
    income = [None if i % 40 == 0 else float(v) for i, v in enumerate(x[:, 0])]
    frame = pl.DataFrame({"income": income, "age": x[:, 1], "score": x[:, 2], "region": region})
    spec = SegmentationSpec(fields=("income", "age", "score", "region"), algorithm=algorithm, max_clusters=5)
    result = SklearnSegmenter().segment(PolarsDataset(frame), spec, _nothing)
    _check("SegmentationResult", dict(JobResultPresenter().present(result)))


def test_policy_results_match_the_schema() -> None:
    rng = np.random.default_rng(2)
    rows: dict[str, list[Any]] = {"customerId": [], "channel": [], "timestamp": [], "interactionType": []}
    start = 1_704_067_200
    for customer in range(400):
        for week in range(8):
            for _ in range(int(rng.integers(1, 9))):
                t = start + week * 7 * 86_400 + int(rng.integers(0, 6 * 86_400))
                channel = str(rng.choice(["email", "sms"]))
                events = ["impression"]
                if rng.random() < 0.2:
                    events.append("click")
                    if rng.random() < 0.3:
                        events.append("conversion")
                for offset, event in enumerate(events):
                    rows["customerId"].append(f"c{customer}")
                    rows["channel"].append(channel)
                    rows["timestamp"].append(t + offset * 60)
                    rows["interactionType"].append(event)
    result = PolarsPolicyAnalyzer().analyze(PolarsDataset(pl.DataFrame(rows)), PolicySpec(), _nothing)
    _check("PolicyAnalysisResult", dict(JobResultPresenter().present(result)))


def test_content_results_match_the_schema() -> None:
    rng = np.random.default_rng(3)
    words = [
        "free",
        "shipping",
        "sale",
        "urgent",
        "final",
        "notice",
        "new",
        "arrivals",
        "20%",
        "off",
        "today",
    ]
    n = 300
    subjects = [" ".join(rng.choice(words, 4)) for _ in range(n)]
    impressions = rng.integers(500, 5_000, n)
    clicks = rng.binomial(impressions, [0.05 if "free" in s else 0.02 for s in subjects])
    frame = pl.DataFrame(
        {
            "id": [f"cr{i}" for i in range(n)],
            "channel": rng.choice(["email", "push"], n).tolist(),
            "subject": subjects,
            "impressions": impressions,
            "clicks": clicks,
            "conversions": rng.binomial(clicks, 0.1),
        }
    )
    result = SklearnContentAnalyzer().analyze(PolarsDataset(frame), ContentSpec(), _nothing)
    _check("ContentAnalysisResult", present_content_analysis(result))


def test_drift_results_match_the_schema() -> None:
    rng = np.random.default_rng(6)
    n = 1200
    frame = pl.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "region": rng.choice(["north", "south"], n).tolist(),
            "converted": (rng.random(n) < 0.4).astype(int),
        }
    )
    spec = GbmTrainingSpec(label="converted", id_field=None, params=GbmParams(num_iterations=10))
    dataset = PolarsDataset(frame)
    state = LightGbmTrainer().train(dataset, spec, plan_features(spec, dataset.schema), _nothing).model_state
    rows = frame.to_dicts()
    trained = {"rows": 240, "auc": 0.95, "logloss": 0.3, "ece": 0.02}
    state = with_reference(state, rows, rows[:240], trained)
    shifted = frame.with_columns((pl.col("income") + 10).alias("income"))
    with_model = PolarsDriftAnalyzer().analyze(
        PolarsDataset(shifted), DriftSpec(model_state=state, label="converted"), _nothing
    )
    assert with_model.performance is not None and with_model.recommendations
    _check("DriftAnalysisResult", dict(JobResultPresenter().present(with_model)))
    alone = PolarsDriftAnalyzer().analyze(
        PolarsDataset(frame), DriftSpec(reference=reference_for(state, rows, rows[:240])), _nothing
    )
    presented = dict(JobResultPresenter().present(alone))
    assert presented["score"] is None and presented["performance"] is None
    _check("DriftAnalysisResult", presented)
