"""The pure rules of content analysis: text preparation, rates, validation, recommendations."""

from __future__ import annotations

import pytest

from domain.content import (
    PLACEHOLDER_TOKEN,
    URL_TOKEN,
    ContentSpec,
    TermInsight,
    build_recommendations,
    clean_text,
    creative_terms,
    ctr,
    cvr,
    field_terms,
    rpi,
    safe_rate,
    tokenize,
    validate_content_spec,
)
from domain.data import ColumnKind
from domain.errors import ValidationFailed

N = ColumnKind.NUMERIC
C = ColumnKind.CATEGORICAL

SCHEMA = {
    "id": C,
    "channel": C,
    "subject": C,
    "body": C,
    "impressions": N,
    "clicks": N,
    "conversions": N,
    "revenue": N,
}


def test_spec_defaults_are_the_documented_ones() -> None:
    spec = ContentSpec()
    assert spec.id_field == "id"
    assert spec.channel_field == "channel"
    assert spec.text_fields == ("subject", "headline", "body", "ctaText")
    assert (spec.impressions_field, spec.clicks_field, spec.conversions_field, spec.revenue_field) == (
        "impressions",
        "clicks",
        "conversions",
        "revenue",
    )
    assert (spec.target, spec.min_impressions, spec.top_terms, spec.random_state) == ("ctr", 100, 20, 42)


# --- text -------------------------------------------------------------------------------------


def test_html_tags_and_entities_are_stripped() -> None:
    raw = "<p>Get <b>Free</b>&nbsp;shipping &amp; returns &eacute;t&eacute;</p><br/>Now"
    assert clean_text(raw) == "get free shipping & returns été now"
    assert tokenize(raw) == ["get", "free", "shipping", "returns", "été", "now"]


def test_tags_do_not_glue_words_together() -> None:
    assert tokenize("<p>one</p><p>two</p>") == ["one", "two"]


def test_script_style_and_comments_are_dropped_with_their_content() -> None:
    raw = "<style>p {color: red}</style><!-- hidden note --><script>var x = 1;</script>Visible"
    assert tokenize(raw) == ["visible"]


def test_comparison_signs_in_copy_are_not_taken_for_tags() -> None:
    assert tokenize("Price < 20 and > 10") == ["price", "20", "and", "10"]


def test_encoded_markup_stays_copy() -> None:
    # "&lt;b&gt;" is text the reader sees, decoded after tags are gone, so it is not removed as a tag.
    assert clean_text("&lt;b&gt;bold") == "<b>bold"


@pytest.mark.parametrize(
    "raw",
    [
        "Hi {{first_name}}, welcome",
        "Hi {{ user.first_name | default: 'there' }}, welcome",
        "Hi {{{raw_name}}}, welcome",
        "Hi {name}, welcome",
        "Hi ${name}, welcome",
        "Hi *|FNAME|*, welcome",
        "Hi {% if vip %}, welcome",
    ],
)
def test_every_placeholder_style_becomes_one_token(raw: str) -> None:
    assert tokenize(raw) == ["hi", PLACEHOLDER_TOKEN, "welcome"]


def test_links_become_one_token() -> None:
    assert tokenize("Read at https://ex.com/a?utm_source=x or www.shop.com/sale today") == [
        "read",
        "at",
        URL_TOKEN,
        "or",
        URL_TOKEN,
        "today",
    ]


def test_numbers_and_percent_survive() -> None:
    assert tokenize("Get 20% OFF, 12.5% back, 20 % more, 9.99 only") == [
        "get",
        "20%",
        "off",
        "12.5%",
        "back",
        "20%",
        "more",
        "9.99",
        "only",
    ]
    # A % that follows no number is punctuation.
    assert tokenize("100 % sure, % alone") == ["100%", "sure", "alone"]


def test_words_keep_inner_apostrophes_and_digits() -> None:
    assert tokenize("Don\u2019t miss 24h deals!!") == ["don't", "miss", "24h", "deals"]


def test_decomposed_accents_are_the_same_word() -> None:
    assert tokenize("Cafe\u0301") == tokenize("Caf\u00e9") == ["caf\u00e9"]


def test_emoji_are_terms() -> None:
    assert tokenize("Sale\U0001f525now") == ["sale", "\U0001f525", "now"]


def test_empty_inputs() -> None:
    assert clean_text(None) == ""
    assert tokenize("") == []
    assert tokenize("<p></p> &nbsp; !!") == []


def test_field_terms_are_unigrams_then_bigrams() -> None:
    assert field_terms("Final notice: pay now") == [
        "final",
        "notice",
        "pay",
        "now",
        "final notice",
        "notice pay",
        "pay now",
    ]


def test_bigrams_do_not_cross_fields() -> None:
    terms = creative_terms(["20% off", None, "free gift"])
    assert terms == ["20%", "off", "20% off", "free", "gift", "free gift"]
    assert "off free" not in terms


# --- rates ------------------------------------------------------------------------------------


def test_rates_by_hand() -> None:
    assert ctr(30, 1000) == pytest.approx(0.03)
    assert cvr(3, 30) == pytest.approx(0.1)
    assert rpi(150.0, 1000) == pytest.approx(0.15)


def test_rates_are_undefined_not_zero_without_a_denominator() -> None:
    assert ctr(0, 0) is None
    assert cvr(5, 0) is None
    assert rpi(10.0, 0) is None
    assert safe_rate(1, -1) is None
    assert ctr(0, 10) == 0.0


# --- validation -------------------------------------------------------------------------------


def _fields(error: ValidationFailed) -> set[str]:
    return {detail["field"] for detail in error.details}


def test_a_spec_that_fits_the_data_passes() -> None:
    validate_content_spec(ContentSpec(), SCHEMA)
    # Revenue is optional, and absent text fields are fine as long as one is there.
    validate_content_spec(ContentSpec(), {k: v for k, v in SCHEMA.items() if k not in ("revenue", "body")})


@pytest.mark.parametrize("column", ["id", "channel", "impressions", "clicks", "conversions"])
def test_a_missing_required_column_is_named(column: str) -> None:
    schema = {k: v for k, v in SCHEMA.items() if k != column}
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(ContentSpec(), schema)
    assert _fields(caught.value) == {column}


def test_counts_must_be_numeric_and_revenue_too_when_present() -> None:
    schema = {**SCHEMA, "clicks": C, "revenue": C}
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(ContentSpec(), schema)
    assert _fields(caught.value) == {"clicks", "revenue"}


def test_no_text_field_in_the_data() -> None:
    schema = {k: v for k, v in SCHEMA.items() if k not in ("subject", "body")}
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(ContentSpec(), schema)
    assert _fields(caught.value) == {"textFields"}


def test_text_fields_must_hold_text() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(ContentSpec(text_fields=("subject", "impressions")), SCHEMA)
    assert _fields(caught.value) == {"impressions"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (ContentSpec(target="rpi"), "target"),
        (ContentSpec(min_impressions=-1), "minImpressions"),
        (ContentSpec(top_terms=0), "topTerms"),
        (ContentSpec(top_terms=201), "topTerms"),
        (ContentSpec(random_state=-1), "randomState"),
        (ContentSpec(text_fields=()), "textFields"),
        (ContentSpec(text_fields=("subject", "subject")), "textFields"),
    ],
)
def test_bad_settings_are_named(spec: ContentSpec, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(spec, SCHEMA)
    assert _fields(caught.value) == {field}


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(ContentSpec(target="x", top_terms=0), {"id": C})
    assert _fields(caught.value) == {
        "target",
        "topTerms",
        "channel",
        "impressions",
        "clicks",
        "conversions",
        "textFields",
    }


def test_boundary_settings_are_accepted() -> None:
    validate_content_spec(ContentSpec(target="cvr", min_impressions=0, top_terms=1), SCHEMA)
    validate_content_spec(ContentSpec(top_terms=200, random_state=2**32 - 1), SCHEMA)


# --- findings and recommendations -------------------------------------------------------------


def test_direction_follows_the_lift() -> None:
    assert TermInsight("free", 0.2, 10, 0.3).direction == "helps"
    assert TermInsight("urgent", 0.1, 10, -0.2).direction == "hurts"
    assert TermInsight("the", 0.0, 10, None).direction == "neutral"
    assert TermInsight("free", 0.2, 10, 0.3).to_json() == {
        "term": "free",
        "importance": 0.2,
        "direction": "helps",
        "support": 10,
        "lift": 0.3,
    }


def test_recommendations_from_terms_and_underperformers() -> None:
    terms = [
        TermInsight("free", 0.30, 120, 0.48),
        TermInsight("urgent", 0.20, 90, -0.30),
        TermInsight("weekly", 0.10, 300, 0.01),  # too small a lift to act on
        TermInsight("20% off", 0.05, 80, 0.25),
    ]
    ids = [f"c{i}" for i in range(25)]
    recs = [r.to_json() for r in build_recommendations(terms, "ctr", {"email": ids}, {"email": 400})]
    assert all(r["type"] == "content" for r in recs)
    assert [r["title"] for r in recs] == [
        'Use "free" more',
        'Use "20% off" more',
        'Avoid "urgent"',
        "Review 25 underperforming email creatives",
    ]
    assert "48% higher click-through rate" in recs[0]["description"]
    assert "30% lower" in recs[2]["description"]
    assert recs[0]["payload"] == {
        "action": "use_more",
        "term": "free",
        "target": "ctr",
        "lift": 0.48,
        "support": 120,
        "importance": 0.30,
    }
    review = recs[3]["payload"]
    assert review["count"] == 25
    assert review["creativeIds"] == ids[:20]
    assert "25 of 400 email creatives" in recs[3]["description"]


def test_no_recommendation_without_findings() -> None:
    assert build_recommendations([TermInsight("the", 0.1, 5, None)], "cvr", {"push": []}, {}) == []
