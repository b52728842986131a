"""Content analysis: which words and phrases of creatives go with clicks and conversions.

Pure rules only: the command, how a creative's text becomes terms, the rate formulas, validation
against a dataset's schema, and how findings become recommendations. The model lives in an adapter.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from domain.data import ColumnKind
from domain.errors import ValidationFailed, field_error

TARGETS = ("ctr", "cvr")
MAX_TOP_TERMS = 200
# The forest's seed must fit numpy's RandomState.
MAX_RANDOM_STATE = 2**32 - 1

# Every template placeholder becomes this one token: personalisation is then a term the model can
# weigh ("hi __placeholder__"), whatever the variable is called.
PLACEHOLDER_TOKEN = "__placeholder__"
# Links carry tracking noise (hosts, utm parameters) that would flood the vocabulary; one token keeps
# the fact that a link is there.
URL_TOKEN = "__url__"

DIRECTION_HELPS = "helps"
DIRECTION_HURTS = "hurts"
DIRECTION_NEUTRAL = "neutral"

RECOMMENDATION_TYPE = "content"


@dataclass(frozen=True)
class ContentSpec:
    """A content analysis request. Field names are the data's column names."""

    id_field: str = "id"
    channel_field: str = "channel"
    # Fields absent from the data are skipped (with a warning); at least one must be present.
    text_fields: tuple[str, ...] = ("subject", "headline", "body", "ctaText")
    impressions_field: str = "impressions"
    clicks_field: str = "clicks"
    conversions_field: str = "conversions"
    # Optional: when the column is absent, revenue and RPI are reported as null.
    revenue_field: str = "revenue"
    target: str = "ctr"
    min_impressions: int = 100
    top_terms: int = 20
    random_state: int = 42


# --- text preparation -------------------------------------------------------------------------

# The rules below are written once, as pattern strings in the syntax that Python's `re` and the Rust
# `regex` crate (polars) share: no lookaround, no backreferences. clean_text/creative_terms are the
# reference; the analysis adapter runs the same patterns vectorized, in the same order, and a test
# holds the two to the same terms. One known difference: Rust's \w includes combining marks, so in
# scripts whose words carry combining vowel signs (Devanagari, Thai, pointed Arabic or Hebrew) the
# adapter keeps a word whole where Python's re splits it; Latin, Greek and Cyrillic text, precomposed
# or composed by the NFC step below, agree.

# {{first_name}}, {{{raw}}}, {{ user.name | default }}, {var}, ${var}, {% if x %}, Mailchimp *|FNAME|*.
PLACEHOLDER_PATTERN = r"(?s)\{\{.*?\}\}\}?|\{[^{}\n]{1,64}\}|\*\|[^|\n]{1,64}\|\*"
# Markup, in one pass: comments, script and style blocks with their content (code, not copy), and
# tags. A tag must start with a letter, / or !, so copy such as "price < 20 and > 10" is not eaten.
MARKUP_PATTERN = (
    r"(?is)<!--.*?-->"
    r"|<script\b[^>]*>.*?</script\s*>"
    r"|<style\b[^>]*>.*?</style\s*>"
    r"|</?[a-z!][^<>]*>"
)
URL_PATTERN = r"(?:https?://|www\.)[^\s<>\"']+"
CURLY_QUOTE_PATTERN = "[\u2018\u2019]"
# Combining diacritical marks (general, extended, supplement, for symbols, half marks): a text with
# one is NFC-composed ("cafe" + U+0301 -> "café"); others are left as they are.
COMBINING_MARK_PATTERN = "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]"
# "20 %" (French typography, non-breaking spaces) is the same offer as "20%": group 1 is the digit.
SPACED_PERCENT_PATTERN = r"(\d)\s+%"
_EMOJI = "\U0001f000-\U0001faff\u2600-\u27bf"
# A term is: a number with its % ("20%", "12.5%"), a word of letters and digits with inner
# apostrophes, dots or commas ("don't", "24h", "9.99", "1,000"), one of our two marker tokens, or an
# emoji. Everything else (punctuation, currency signs, a % not after a number) separates tokens.
TOKEN_PATTERN = (
    r"\d+(?:[.,]\d+)*%"
    r"|[^\W_]+(?:[.,'][^\W_]+)*"
    rf"|{PLACEHOLDER_TOKEN}|{URL_TOKEN}"
    rf"|[{_EMOJI}]"
)

_PLACEHOLDER = re.compile(PLACEHOLDER_PATTERN)
_MARKUP = re.compile(MARKUP_PATTERN)
_URL = re.compile(URL_PATTERN)
_CURLY_QUOTE = re.compile(CURLY_QUOTE_PATTERN)
_COMBINING_MARK = re.compile(COMBINING_MARK_PATTERN)
_SPACED_PERCENT = re.compile(SPACED_PERCENT_PATTERN)
_TOKEN = re.compile(TOKEN_PATTERN)


def clean_text(raw: str | None) -> str:
    """Copy as a reader sees it, lower-cased: no HTML tags or entities, placeholders and links
    replaced by their marker tokens, whitespace collapsed. None becomes ""."""
    if not raw:
        return ""
    # Each step runs only when its trigger is present: most subjects and CTAs have no markup.
    text = raw
    # Placeholders go before markup: "{{#if a > b}}" would otherwise look like the end of a tag.
    if "{" in text or "*|" in text:
        text = _PLACEHOLDER.sub(f" {PLACEHOLDER_TOKEN} ", text)
    if "<" in text:
        text = _MARKUP.sub(" ", text)
    # Entities are decoded after markup is gone, so an encoded "&lt;b&gt;" stays copy, not a tag.
    if "&" in text:
        text = html.unescape(text)
    # "cafe" + combining acute (as macOS writes it) and "café" are the same word.
    if not text.isascii() and _COMBINING_MARK.search(text):
        text = unicodedata.normalize("NFC", text)
    text = text.lower()
    if "://" in text or "www." in text:
        text = _URL.sub(f" {URL_TOKEN} ", text)
    if "\u2019" in text or "\u2018" in text:
        text = _CURLY_QUOTE.sub("'", text)
    if "%" in text:
        text = _SPACED_PERCENT.sub(r"\1%", text)
    return " ".join(text.split())


def tokenize(raw: str | None) -> list[str]:
    """The tokens of one text field, in order."""
    return _TOKEN.findall(clean_text(raw))


def field_terms(raw: str | None) -> list[str]:
    """Unigrams then bigrams of one field. Bigrams stay inside a field: the last word of a subject
    and the first of a body are not a phrase."""
    tokens = tokenize(raw)
    return tokens + [f"{a} {b}" for a, b in pairwise(tokens)]


def creative_terms(texts: Iterable[str | None]) -> list[str]:
    """All terms (with repeats, for term frequency) of a creative's text fields."""
    terms: list[str] = []
    for text in texts:
        terms.extend(field_terms(text))
    return terms


# --- rates ------------------------------------------------------------------------------------


def safe_rate(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when the denominator is not positive (the rate is undefined,
    and 0 would claim a measured zero)."""
    if denominator <= 0:
        return None
    return numerator / denominator


def ctr(clicks: float, impressions: float) -> float | None:
    return safe_rate(clicks, impressions)


def cvr(conversions: float, clicks: float) -> float | None:
    return safe_rate(conversions, clicks)


def rpi(revenue: float, impressions: float) -> float | None:
    return safe_rate(revenue, impressions)


def target_denominator_field(spec: ContentSpec) -> str:
    """The count a target rate is taken over, which also sets each creative's weight."""
    return spec.impressions_field if spec.target == "ctr" else spec.clicks_field


def target_numerator_field(spec: ContentSpec) -> str:
    return spec.clicks_field if spec.target == "ctr" else spec.conversions_field


# --- validation -------------------------------------------------------------------------------


def present_text_fields(spec: ContentSpec, schema: Mapping[str, ColumnKind]) -> tuple[str, ...]:
    return tuple(name for name in spec.text_fields if name in schema)


def validate_content_spec(spec: ContentSpec, schema: Mapping[str, ColumnKind]) -> None:
    """Raise ValidationFailed listing every problem, each naming the setting or the column."""
    errors: list[dict[str, Any]] = []
    if spec.target not in TARGETS:
        errors.append(field_error("target", f"must be one of {', '.join(TARGETS)}, got {spec.target!r}"))
    if spec.min_impressions < 0:
        errors.append(field_error("minImpressions", f"must be >= 0, got {spec.min_impressions}"))
    if not 1 <= spec.top_terms <= MAX_TOP_TERMS:
        errors.append(field_error("topTerms", f"must be in 1..{MAX_TOP_TERMS}, got {spec.top_terms}"))
    if not 0 <= spec.random_state <= MAX_RANDOM_STATE:
        errors.append(
            field_error("randomState", f"must be in 0..{MAX_RANDOM_STATE}, got {spec.random_state}")
        )

    for name in (spec.id_field, spec.channel_field):
        if name not in schema:
            errors.append(field_error(name, "column is missing from the data"))
    for name in (spec.impressions_field, spec.clicks_field, spec.conversions_field):
        if name not in schema:
            errors.append(field_error(name, "count column is missing from the data"))
        elif schema[name] is not ColumnKind.NUMERIC:
            errors.append(field_error(name, f"count column must be numeric, got {schema[name].value}"))
    revenue_kind = schema.get(spec.revenue_field)
    if revenue_kind is not None and revenue_kind is not ColumnKind.NUMERIC:
        errors.append(field_error(spec.revenue_field, f"revenue must be numeric, got {revenue_kind.value}"))

    if not spec.text_fields:
        errors.append(field_error("textFields", "name at least one text field"))
    elif len(set(spec.text_fields)) != len(spec.text_fields):
        errors.append(field_error("textFields", "text fields must not repeat"))
    else:
        present = present_text_fields(spec, schema)
        if not present:
            errors.append(
                field_error(
                    "textFields", f"none of the text fields is in the data: {', '.join(spec.text_fields)}"
                )
            )
        for name in present:
            if schema[name] is not ColumnKind.CATEGORICAL:
                errors.append(field_error(name, f"text field must hold text, got {schema[name].value}"))
    if errors:
        raise ValidationFailed("the content analysis request does not fit the data", errors)


# --- findings and recommendations -------------------------------------------------------------


@dataclass(frozen=True)
class TermInsight:
    """One term of the model. `lift` is the channel-adjusted relative difference of the target between
    creatives with and without the term (0.25 = 25% higher); None when either side is empty."""

    term: str
    importance: float
    support: int
    lift: float | None

    @property
    def direction(self) -> str:
        return direction_of(self.lift)

    def to_json(self) -> dict[str, Any]:
        return {
            "term": self.term,
            "importance": self.importance,
            "direction": self.direction,
            "support": self.support,
            "lift": self.lift,
        }


def direction_of(lift: float | None) -> str:
    if lift is None or lift == 0:
        return DIRECTION_NEUTRAL
    return DIRECTION_HELPS if lift > 0 else DIRECTION_HURTS


@dataclass(frozen=True)
class ContentRecommendation:
    title: str
    description: str
    payload: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": RECOMMENDATION_TYPE,
            "title": self.title,
            "description": self.description,
            "payload": dict(self.payload),
        }


# A term must move the target by at least this much (relative) to be worth acting on.
MIN_ACTIONABLE_LIFT = 0.05
MAX_TERM_RECOMMENDATIONS = 3
MAX_IDS_IN_PAYLOAD = 20

_TARGET_NAMES = {"ctr": "click-through rate", "cvr": "conversion rate"}


def build_recommendations(
    terms: Sequence[TermInsight],
    target: str,
    underperformers: Mapping[str, Sequence[str]],
    creatives_by_channel: Mapping[str, int],
) -> list[ContentRecommendation]:
    """Recommendations from the ranked terms (most important first) and, per channel, the ids of
    creatives significantly below their channel."""
    metric = _TARGET_NAMES.get(target, target)
    recommendations: list[ContentRecommendation] = []
    helping = [t for t in terms if t.lift is not None and t.lift >= MIN_ACTIONABLE_LIFT]
    hurting = [t for t in terms if t.lift is not None and t.lift <= -MIN_ACTIONABLE_LIFT]
    for insight in helping[:MAX_TERM_RECOMMENDATIONS]:
        assert insight.lift is not None
        recommendations.append(
            ContentRecommendation(
                title=f'Use "{insight.term}" more',
                description=(
                    f'Creatives containing "{insight.term}" have a {_percent(insight.lift)} higher {metric} '
                    f"than others in the same channel ({insight.support} creatives contain it)."
                ),
                payload={"action": "use_more", "term": insight.term, "target": target, **_numbers(insight)},
            )
        )
    for insight in hurting[:MAX_TERM_RECOMMENDATIONS]:
        assert insight.lift is not None
        recommendations.append(
            ContentRecommendation(
                title=f'Avoid "{insight.term}"',
                description=(
                    f'Creatives containing "{insight.term}" have a {_percent(-insight.lift)} lower {metric} '
                    f"than others in the same channel ({insight.support} creatives contain it)."
                ),
                payload={"action": "avoid", "term": insight.term, "target": target, **_numbers(insight)},
            )
        )
    for channel in sorted(underperformers):
        ids = list(underperformers[channel])
        if not ids:
            continue
        recommendations.append(
            ContentRecommendation(
                title=f"Review {len(ids)} underperforming {channel} creatives",
                description=(
                    f"{len(ids)} of {creatives_by_channel.get(channel, len(ids))} {channel} creatives have a "
                    f"{metric} significantly below their channel's; rewrite or retire them."
                ),
                payload={
                    "action": "review",
                    "channel": channel,
                    "target": target,
                    "count": len(ids),
                    "creativeIds": ids[:MAX_IDS_IN_PAYLOAD],
                },
            )
        )
    return recommendations


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.0f}%"


def _numbers(insight: TermInsight) -> dict[str, Any]:
    return {"lift": insight.lift, "support": insight.support, "importance": insight.importance}
