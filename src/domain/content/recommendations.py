"""How findings become advice: the strongest helping and hurting terms, and per channel the creatives
significantly below it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from domain.content.result import ContentRecommendation, ReviewAction, TermAction, TermInsight

# A term must move the target by at least this much (relative) to be worth acting on.
MIN_ACTIONABLE_LIFT = 0.05
MAX_TERM_ADVICE = 3
MAX_IDS_IN_PAYLOAD = 20

_TARGET_NAMES = {"ctr": "click-through rate", "cvr": "conversion rate"}


def build_recommendations(
    terms: Sequence[TermInsight],
    target: str,
    underperformers: Mapping[str, Sequence[str | int]],
    creatives_by_channel: Mapping[str, int],
) -> tuple[ContentRecommendation, ...]:
    """Recommendations from the ranked terms (most important first) and, per channel, the ids of
    creatives significantly below their channel."""
    metric = _TARGET_NAMES.get(target, target)
    helping = [t for t in terms if t.lift is not None and t.lift >= MIN_ACTIONABLE_LIFT]
    hurting = [t for t in terms if t.lift is not None and t.lift <= -MIN_ACTIONABLE_LIFT]
    recommendations = [_term_advice(t, "use_more", target, metric) for t in helping[:MAX_TERM_ADVICE]]
    recommendations += [_term_advice(t, "avoid", target, metric) for t in hurting[:MAX_TERM_ADVICE]]
    for channel in sorted(underperformers):
        ids = tuple(underperformers[channel])
        if not ids:
            continue
        recommendations.append(
            ContentRecommendation(
                title=f"Review {len(ids)} underperforming {channel} creatives",
                description=(
                    f"{len(ids)} of {creatives_by_channel.get(channel, len(ids))} {channel} creatives have a "
                    f"{metric} significantly below their channel's; rewrite or retire them."
                ),
                payload=ReviewAction(
                    channel=channel, target=target, count=len(ids), creative_ids=ids[:MAX_IDS_IN_PAYLOAD]
                ),
            )
        )
    return tuple(recommendations)


def _term_advice(insight: TermInsight, action: str, target: str, metric: str) -> ContentRecommendation:
    assert insight.lift is not None
    if action == "use_more":
        title = f'Use "{insight.term}" more'
        change = f"{_percent(insight.lift)} higher"
    else:
        title = f'Avoid "{insight.term}"'
        change = f"{_percent(-insight.lift)} lower"
    return ContentRecommendation(
        title=title,
        description=(
            f'Creatives containing "{insight.term}" have a {change} {metric} '
            f"than others in the same channel ({insight.support} creatives contain it)."
        ),
        payload=TermAction(
            action=action,
            term=insight.term,
            target=target,
            lift=insight.lift,
            support=insight.support,
            importance=insight.importance,
        ),
    )


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.0f}%"
