"""What a content analysis finds: the terms that move the target, each channel's totals, each
creative's standing in its channel, how well the text explains the target, why rows were left out,
and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Literal

from domain.content.spec import Target

Direction = Literal["helps", "hurts", "neutral"]


def direction_of(lift: float | None) -> Direction:
    if lift is None or lift == 0:
        return "neutral"
    return "helps" if lift > 0 else "hurts"


@dataclass(frozen=True)
class TermInsight:
    """One term of the model. `lift` is the channel-adjusted relative difference of the target between
    creatives with and without the term (0.25 = 25% higher); None when either side is empty."""

    term: str
    importance: float
    support: int  # creatives containing the term
    lift: float | None

    @property
    def direction(self) -> Direction:
        return direction_of(self.lift)


@dataclass(frozen=True)
class ChannelSummary:
    """Totals over a channel's valid creatives. Counts stay integers when the data's are whole."""

    channel: str
    creatives: int
    impressions: int | float
    clicks: int | float
    conversions: int | float
    revenue: float | None  # None when the data has no revenue column
    ctr: float | None
    cvr: float | None
    rpi: float | None


class CreativeFlag(StrEnum):
    LOW_VOLUME = "low_volume"
    UNDERPERFORMER = "underperformer"
    TOP_PERFORMER = "top_performer"


@dataclass(frozen=True)
class CreativeStanding:
    """One valid creative: its rates, and its place in its channel (None when its target rate is not
    well measured)."""

    id: str | int
    channel: str
    ctr: float | None
    cvr: float | None
    rpi: float | None
    percentile_in_channel: float | None
    flags: tuple[CreativeFlag, ...]


@dataclass(frozen=True)
class ModelQuality:
    """How much of the within-channel spread of the target the text explains, and on what."""

    target: Target
    r2: float | None  # None when the held-out target does not vary
    r2_kind: Literal["holdout"]  # how r2 was measured
    creatives: int
    train_creatives: int
    holdout_creatives: int
    terms: int
    trees: int
    # Share of the forest's importance that went to the channel indicators rather than to terms.
    channel_importance: float


class ExclusionReason(Enum):
    """Why a row is left out of the model. The first four make a row invalid (in no summary); a row
    left out for the others still counts as a creative."""

    MISSING_ID = "missing_id"
    MISSING_COUNTS = "missing_counts"
    NEGATIVE_COUNTS = "negative_counts"
    CLICKS_ABOVE_IMPRESSIONS = "clicks_above_impressions"
    BELOW_MIN_IMPRESSIONS = "below_min_impressions"
    NO_CLICKS = "no_clicks"
    NO_IMPRESSIONS = "no_impressions"
    EMPTY_TEXT = "empty_text"

    @property
    def invalidates(self) -> bool:
        return self in _INVALIDATING


_INVALIDATING = frozenset(
    {
        ExclusionReason.MISSING_ID,
        ExclusionReason.MISSING_COUNTS,
        ExclusionReason.NEGATIVE_COUNTS,
        ExclusionReason.CLICKS_ABOVE_IMPRESSIONS,
    }
)


@dataclass(frozen=True)
class TermAction:
    """Use a term more (`use_more`) or avoid it (`avoid`), with the numbers behind the advice."""

    action: str
    term: str
    target: str
    lift: float
    support: int
    importance: float


@dataclass(frozen=True)
class ReviewAction:
    """Review a channel's creatives that are significantly below it (the first ids, and how many)."""

    channel: str
    target: str
    count: int
    creative_ids: tuple[str | int, ...]
    action: str = "review"


@dataclass(frozen=True)
class ContentRecommendation:
    title: str
    description: str
    payload: TermAction | ReviewAction


@dataclass(frozen=True)
class ContentAnalysisResult:
    top_terms: tuple[TermInsight, ...]
    channel_summary: tuple[ChannelSummary, ...]
    creatives: tuple[CreativeStanding, ...]
    model: ModelQuality
    # Rows left out of the model, by reason (sorted by reason, reasons that occurred only).
    excluded: tuple[tuple[ExclusionReason, int], ...]
    recommendations: tuple[ContentRecommendation, ...]
    warnings: tuple[str, ...]
