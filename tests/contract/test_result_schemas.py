"""Every analysis result, as presented, matches its schema in openapi.yaml (what the platform reads from
/status)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import make_blobs

from adapters.content.analyzer import SklearnContentAnalyzer
from adapters.frames import PolarsDataset
from adapters.policies.analyzer import PolarsPolicyAnalyzer
from adapters.segmentation.segmenter import SklearnSegmenter
from domain.content import ContentSpec
from domain.policies import PolicySpec
from domain.segmentation import SegmentationSpec
from entrypoints.presenters.content import present_content_analysis
from entrypoints.presenters.jobs import JobResultPresenter
from support.schemas import schema_errors, validator


def _check(name: str, result: dict[str, Any]) -> None:
    errors = schema_errors(name, result)
    assert not errors, errors[:5]
    # The other result schemas must not accept it: the Job's `result` is a oneOf.
    for other in {"SegmentationResult", "PolicyAnalysisResult", "ContentAnalysisResult"} - {name}:
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
