"""How a creative's text becomes terms: markup, entities and placeholders stripped, links and
placeholders kept as marker tokens, then words, numbers with their %, and emoji, as unigrams and
in-field bigrams.

The rules are written once, as pattern strings in the syntax that Python's `re` and the Rust `regex`
crate (polars) share: no lookaround, no backreferences. clean_text/creative_terms are the reference;
the analysis adapter runs the same patterns vectorized, in the same order, and a test holds the two
to the same terms. One known difference: Rust's \\w includes combining marks, so in scripts whose
words carry combining vowel signs (Devanagari, Thai, pointed Arabic or Hebrew) the adapter keeps a
word whole where Python's re splits it; Latin, Greek and Cyrillic text, precomposed or composed by
the NFC step below, agree.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from itertools import pairwise

# Every template placeholder becomes this one token: personalisation is then a term the model can
# weigh ("hi __placeholder__"), whatever the variable is called.
PLACEHOLDER_TOKEN = "__placeholder__"
# Links carry tracking noise (hosts, utm parameters) that would flood the vocabulary; one token keeps
# the fact that a link is there.
URL_TOKEN = "__url__"

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
