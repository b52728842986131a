"""Content analysis on the wire: the request's names for ContentSpec's fields, the request mapped to
the spec, and the result as the ContentAnalysisResult schema of openapi.yaml spells it."""

from __future__ import annotations

from typing import Any

from domain.content.result import (
    ChannelSummary,
    ContentAnalysisResult,
    ContentRecommendation,
    CreativeStanding,
    ExclusionReason,
    ModelQuality,
    ReviewAction,
    TermAction,
    TermInsight,
)
from domain.content.spec import ContentSpec
from entrypoints import contract as c
from entrypoints.presenters.wire import WireNames

CONTENT_NAMES = WireNames(
    ContentSpec,
    {
        "id_field": "fieldMap.id",
        "channel_field": "fieldMap.channel",
        "impressions_field": "fieldMap.impressions",
        "clicks_field": "fieldMap.clicks",
        "conversions_field": "fieldMap.conversions",
        "revenue_field": "fieldMap.revenue",
    },
)

EXCLUSION_KEYS = {
    ExclusionReason.MISSING_ID: "missingId",
    ExclusionReason.MISSING_COUNTS: "missingCounts",
    ExclusionReason.NEGATIVE_COUNTS: "negativeCounts",
    ExclusionReason.CLICKS_ABOVE_IMPRESSIONS: "clicksAboveImpressions",
    ExclusionReason.BELOW_MIN_IMPRESSIONS: "belowMinImpressions",
    ExclusionReason.NO_CLICKS: "noClicks",
    ExclusionReason.NO_IMPRESSIONS: "noImpressions",
    ExclusionReason.EMPTY_TEXT: "emptyText",
}


def content_spec(body: c.ContentRequest) -> ContentSpec:
    fields = body.fieldMap or c.FieldMap1()
    return ContentSpec(
        id_field=fields.id,
        channel_field=fields.channel,
        text_fields=tuple(name.root for name in body.textFields),
        impressions_field=fields.impressions,
        clicks_field=fields.clicks,
        conversions_field=fields.conversions,
        # Null means "no revenue column": a name no column has.
        revenue_field=fields.revenue or "",
        target=body.target,
        min_impressions=body.minImpressions,
        top_terms=body.topTerms,
        random_state=body.randomState,
    )


def present_content_analysis(result: ContentAnalysisResult) -> dict[str, Any]:
    # Built with model_construct: the domain types are already checked, and validating would turn
    # integer counts and ids into floats, which the platform would see.
    document = c.ContentAnalysisResult.model_construct(
        topTerms=[_top_term(term) for term in result.top_terms],
        channelSummary=[_channel(summary) for summary in result.channel_summary],
        creatives=[_creative(creative) for creative in result.creatives],
        model=_model(result.model),
        excluded={EXCLUSION_KEYS[reason]: count for reason, count in result.excluded},
        recommendations=[_recommendation(item) for item in result.recommendations],
        warnings=list(result.warnings),
    )
    presented: dict[str, Any] = document.model_dump()
    return presented


def _top_term(term: TermInsight) -> c.TopTerm:
    return c.TopTerm.model_construct(
        term=term.term,
        importance=term.importance,
        direction=term.direction,
        support=term.support,
        lift=term.lift,
    )


def _channel(summary: ChannelSummary) -> c.ChannelSummaryItem:
    return c.ChannelSummaryItem.model_construct(
        channel=summary.channel,
        creatives=summary.creatives,
        impressions=summary.impressions,
        clicks=summary.clicks,
        conversions=summary.conversions,
        revenue=summary.revenue,
        ctr=summary.ctr,
        cvr=summary.cvr,
        rpi=summary.rpi,
    )


def _creative(creative: CreativeStanding) -> c.Creative:
    return c.Creative.model_construct(
        id=creative.id,
        channel=creative.channel,
        ctr=creative.ctr,
        cvr=creative.cvr,
        rpi=creative.rpi,
        percentileInChannel=creative.percentile_in_channel,
        flags=[flag.value for flag in creative.flags],
    )


def _model(quality: ModelQuality) -> c.Model:
    return c.Model.model_construct(
        target=quality.target,
        r2=quality.r2,
        r2Kind=quality.r2_kind,
        creatives=quality.creatives,
        trainCreatives=quality.train_creatives,
        holdoutCreatives=quality.holdout_creatives,
        terms=quality.terms,
        trees=quality.trees,
        channelImportance=quality.channel_importance,
    )


def _recommendation(item: ContentRecommendation) -> c.Recommendation:
    return c.Recommendation.model_construct(
        type="content", title=item.title, description=item.description, payload=_payload(item.payload)
    )


def _payload(payload: TermAction | ReviewAction) -> dict[str, Any]:
    if isinstance(payload, ReviewAction):
        return {
            "action": payload.action,
            "channel": payload.channel,
            "target": payload.target,
            "count": payload.count,
            "creativeIds": list(payload.creative_ids),
        }
    return {
        "action": payload.action,
        "term": payload.term,
        "target": payload.target,
        "lift": payload.lift,
        "support": payload.support,
        "importance": payload.importance,
    }
