"""domain.content.text.clean_text over a whole column, vectorized: polars runs the same patterns in
Rust, in the same order; Python runs only where a row needs it (rare entities, combining marks)."""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Callable
from html.entities import html5

import polars as pl

from domain.content.text import (
    COMBINING_MARK_PATTERN,
    CURLY_QUOTE_PATTERN,
    MARKUP_PATTERN,
    PLACEHOLDER_PATTERN,
    PLACEHOLDER_TOKEN,
    SPACED_PERCENT_PATTERN,
    URL_PATTERN,
    URL_TOKEN,
)

# Named entities ending in ";" (the only form replaced here), from the table html.unescape uses.
# "&amp;" is left to Python: its "&" could start a second entity, which html.unescape never decodes.
_NAMED_ENTITIES = {f"&{name}": char for name, char in html5.items() if name.endswith(";") and "&" not in char}


def clean_texts(texts: pl.Series) -> pl.Series:
    """clean_text of every row, minus the whitespace collapsing, which tokenizing makes moot."""
    texts = texts.cast(pl.Utf8).fill_null("")
    texts = texts.str.replace_all(PLACEHOLDER_PATTERN, f" {PLACEHOLDER_TOKEN} ")
    texts = texts.str.replace_all(MARKUP_PATTERN, " ")
    # Entities in two passes that together decode exactly what html.unescape does: the common named
    # ones in Rust, then Python's decoder on the rows that still hold an "&" (numeric references,
    # "&amp;", legacy names without ";", or a plain "Tom & Jerry").
    texts = texts.str.replace_many(list(_NAMED_ENTITIES), list(_NAMED_ENTITIES.values()))
    texts = _apply_where(texts, texts.str.contains("&", literal=True), html.unescape)
    texts = _apply_where(texts, texts.str.contains(COMBINING_MARK_PATTERN), _nfc)
    texts = texts.str.to_lowercase()
    texts = texts.str.replace_all(URL_PATTERN, f" {URL_TOKEN} ")
    texts = texts.str.replace_all(CURLY_QUOTE_PATTERN, "'")
    return texts.str.replace_all(SPACED_PERCENT_PATTERN, "${1}%")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _apply_where(texts: pl.Series, mask: pl.Series, function: Callable[[str], str]) -> pl.Series:
    """`function` on the rows where `mask` holds, in Python; the other rows untouched."""
    rows = mask.arg_true()
    if rows.len() == 0:
        return texts
    changed = pl.Series([function(text) for text in texts.gather(rows).to_list()], dtype=pl.Utf8)
    return texts.scatter(rows, changed)
