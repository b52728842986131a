"""A content analysis result as the platform reads it from /status: the keys, their order and
spelling, integers kept as integers, and failure messages in the request's names."""

from __future__ import annotations

import json

from domain.content.result import (
    ChannelSummary,
    ContentAnalysisResult,
    ContentRecommendation,
    CreativeFlag,
    CreativeStanding,
    ExclusionReason,
    ModelQuality,
    ReviewAction,
    TermAction,
    TermInsight,
)
from domain.jobs import EchoedResult, JobFailure, RequestEcho
from entrypoints.presenters.content import EXCLUSION_KEYS, present_content_analysis
from entrypoints.presenters.jobs import JobResultPresenter

RESULT = ContentAnalysisResult(
    top_terms=(TermInsight("free", 0.25, 12, 0.4), TermInsight("the", 0.01, 30, None)),
    channel_summary=(
        ChannelSummary("email", 2, 3000, 90, 9, None, 0.03, 0.1, None),
        ChannelSummary("push", 1, 10.5, 1, 0, 4.0, 1 / 10.5, 0.0, 4.0 / 10.5),
    ),
    creatives=(
        CreativeStanding(7, "email", 0.03, 0.1, None, 25.0, (CreativeFlag.UNDERPERFORMER,)),
        CreativeStanding("c8", "push", None, None, None, None, ()),
    ),
    model=ModelQuality("ctr", None, "holdout", 20, 15, 5, 40, 60, 0.125),
    excluded=((ExclusionReason.BELOW_MIN_IMPRESSIONS, 3), (ExclusionReason.MISSING_ID, 1)),
    recommendations=(
        ContentRecommendation("Use", "more", TermAction("use_more", "free", "ctr", 0.4, 12, 0.25)),
        ContentRecommendation("Review", "below", ReviewAction("email", "ctr", 1, (7,))),
    ),
    warnings=("a warning",),
)


def test_the_result_is_spelled_as_the_contract_spells_it() -> None:
    assert present_content_analysis(RESULT) == {
        "topTerms": [
            {"term": "free", "importance": 0.25, "direction": "helps", "support": 12, "lift": 0.4},
            {"term": "the", "importance": 0.01, "direction": "neutral", "support": 30, "lift": None},
        ],
        "channelSummary": [
            {
                "channel": "email",
                "creatives": 2,
                "impressions": 3000,
                "clicks": 90,
                "conversions": 9,
                "revenue": None,
                "ctr": 0.03,
                "cvr": 0.1,
                "rpi": None,
            },
            {
                "channel": "push",
                "creatives": 1,
                "impressions": 10.5,
                "clicks": 1,
                "conversions": 0,
                "revenue": 4.0,
                "ctr": 1 / 10.5,
                "cvr": 0.0,
                "rpi": 4.0 / 10.5,
            },
        ],
        "creatives": [
            {
                "id": 7,
                "channel": "email",
                "ctr": 0.03,
                "cvr": 0.1,
                "rpi": None,
                "percentileInChannel": 25.0,
                "flags": ["underperformer"],
            },
            {
                "id": "c8",
                "channel": "push",
                "ctr": None,
                "cvr": None,
                "rpi": None,
                "percentileInChannel": None,
                "flags": [],
            },
        ],
        "model": {
            "target": "ctr",
            "r2": None,
            "r2Kind": "holdout",
            "creatives": 20,
            "trainCreatives": 15,
            "holdoutCreatives": 5,
            "terms": 40,
            "trees": 60,
            "channelImportance": 0.125,
        },
        "excluded": {"belowMinImpressions": 3, "missingId": 1},
        "recommendations": [
            {
                "type": "content",
                "title": "Use",
                "description": "more",
                "payload": {
                    "action": "use_more",
                    "term": "free",
                    "target": "ctr",
                    "lift": 0.4,
                    "support": 12,
                    "importance": 0.25,
                },
            },
            {
                "type": "content",
                "title": "Review",
                "description": "below",
                "payload": {
                    "action": "review",
                    "channel": "email",
                    "target": "ctr",
                    "count": 1,
                    "creativeIds": [7],
                },
            },
        ],
        "warnings": ["a warning"],
    }


def test_key_order_is_the_contracts() -> None:
    presented = present_content_analysis(RESULT)
    assert list(presented) == [
        "topTerms",
        "channelSummary",
        "creatives",
        "model",
        "excluded",
        "recommendations",
        "warnings",
    ]
    assert list(presented["channelSummary"][0]) == [
        "channel",
        "creatives",
        "impressions",
        "clicks",
        "conversions",
        "revenue",
        "ctr",
        "cvr",
        "rpi",
    ]
    assert list(presented["creatives"][0])[:2] == ["id", "channel"]


def test_integers_stay_integers_on_the_wire() -> None:
    text = json.dumps(present_content_analysis(RESULT))
    assert '"id": 7,' in text
    assert '"impressions": 3000,' in text
    assert '"creativeIds": [7]' in text


def test_every_exclusion_reason_has_a_wire_key() -> None:
    assert set(EXCLUSION_KEYS) == set(ExclusionReason)
    assert len(set(EXCLUSION_KEYS.values())) == len(ExclusionReason)


def test_the_job_presenter_adds_the_echo_to_a_content_result() -> None:
    document = JobResultPresenter().present(EchoedResult(RESULT, RequestEcho(schema_id="s1", tenant_id="t1")))
    assert document["schemaId"] == "s1" and document["tenantId"] == "t1"
    assert document["excluded"] == {"belowMinImpressions": 3, "missingId": 1}
    json.dumps(document, allow_nan=False)


def test_a_failed_content_job_names_the_requests_fields() -> None:
    failure = JobFailure("INSUFFICIENT_DATA", "raise `min_impressions` or lower `top_terms`")
    renamed = JobResultPresenter().present_failure("content_analysis", failure)
    assert renamed.message == "raise minImpressions or lower topTerms"
