"""How a creative's text becomes terms: markup, entities and placeholders stripped, marker tokens,
words and numbers, unigrams and in-field bigrams (the domain's reference rules)."""

from __future__ import annotations

import pytest

from domain.content.text import (
    PLACEHOLDER_TOKEN,
    URL_TOKEN,
    clean_text,
    creative_terms,
    field_terms,
    tokenize,
)


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
