"""Terms as features: every creative's terms counted (unigrams and in-field bigrams, the vocabulary
capped), weighted by TF-IDF, and, once the forest has ranked them, each term's support and
channel-adjusted lift, which gives it a direction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfTransformer

from adapters.content.text import clean_texts
from domain.content.result import TermInsight
from domain.content.text import TOKEN_PATTERN
from domain.errors import InsufficientData
from domain.progress import ProgressReporter, no_progress

# term code x rows + row must stay below this (int64, with room to spare).
MAX_CELL_KEY = 2**62


def term_counts(
    texts: pl.DataFrame, min_df: int, max_terms: int, progress: ProgressReporter = no_progress
) -> tuple[sp.csr_matrix, list[str], np.ndarray]:
    """domain.content.text.creative_terms of every row (its text columns), counted: a rows x terms matrix
    over the terms found in at least `min_df` rows, the `max_terms` most frequent kept (as sklearn's
    CountVectorizer does, ties by term), the sorted vocabulary, and whether each row has any token.

    Strings are handled once, for the distinct tokens; bigrams and counting work on integer codes (a
    group-by over millions of (row, term string) pairs was the slowest step of the analysis)."""
    n = texts.height
    flats: list[pl.Series] = []
    field_rows: list[np.ndarray] = []
    for k, column_name in enumerate(texts.columns):
        tokens = clean_texts(texts[column_name]).str.extract_all(TOKEN_PATTERN)
        flats.append(tokens.explode().drop_nulls())
        field_rows.append(np.repeat(np.arange(n, dtype=np.int64), tokens.list.len().to_numpy()))
        progress(0.6 * (k + 1) / len(texts.columns), f"tokenized {column_name}")
    words = pl.concat(flats).unique().sort() if flats else pl.Series([], dtype=pl.Utf8)
    n_words = words.len()
    word_list: list[str] = words.to_list()

    # Codes: a word is its rank w in the sorted words; a bigram (a, b) is n_words + a * n_words + b.
    term_parts: list[np.ndarray] = []
    row_parts: list[np.ndarray] = []
    has_text = np.zeros(n, dtype=bool)
    for flat, row in zip(flats, field_rows, strict=True):
        word = flat.cast(pl.Enum(words)).to_physical().to_numpy().astype(np.int64)
        has_text[row] = True
        # Exploding keeps each field's tokens in order: a bigram is a token and the next one of the
        # same creative (fields are coded separately, so a bigram never spans two fields).
        follows = row[1:] == row[:-1]
        term_parts += [word, n_words + word[:-1][follows] * n_words + word[1:][follows]]
        row_parts += [row, row[:-1][follows]]
    del flats, field_rows
    term = np.concatenate(term_parts) if term_parts else np.zeros(0, dtype=np.int64)
    row = np.concatenate(row_parts) if row_parts else np.zeros(0, dtype=np.int64)
    del term_parts, row_parts

    progress(0.7, "counting terms")
    # Bigram codes reach n_words^2: with millions of distinct tokens (order numbers, coupon codes)
    # term * n + row could overflow int64, so the codes are first made dense (a sort more).
    decode: np.ndarray | None = None
    if (n_words + n_words * n_words) * max(n, 1) >= MAX_CELL_KEY:
        decode, dense = np.unique(term, return_inverse=True)
        term = dense.ravel().astype(np.int64)

    # One sort counts everything: cells (term, row) come out grouped by term, rows ascending. In
    # place, because at 100,000 creatives these arrays hold ~13 million entries each.
    key = term
    key *= max(n, 1)
    key += row
    del term, row
    key.sort()
    first_of_cell = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    tf = np.diff(np.r_[first_of_cell, len(key)])
    cell_term, cell_row = np.divmod(key[first_of_cell], max(n, 1))
    del key, first_of_cell
    starts = (
        np.flatnonzero(np.r_[True, cell_term[1:] != cell_term[:-1]]) if len(tf) else np.zeros(0, np.int64)
    )
    group_term = cell_term[starts]
    df = np.diff(np.r_[starts, len(tf)])
    total = np.add.reduceat(tf, starts) if len(tf) else np.zeros(0, dtype=np.int64)

    def term_name(code: int) -> str:
        if decode is not None:
            code = int(decode[code])
        if code < n_words:
            return word_list[code]
        first, second = divmod(code - n_words, n_words)
        return f"{word_list[first]} {word_list[second]}"

    candidates = np.flatnonzero(df >= min_df)
    # The most frequent first; the cut at max_terms must not depend on sort order, so ties go by name.
    by_total = candidates[np.argsort(-total[candidates], kind="stable")]
    if len(by_total) > max_terms:
        cutoff = total[by_total[max_terms - 1]]
        sure = by_total[total[by_total] > cutoff]
        tied = sorted(
            (term_name(int(group_term[g])), g) for g in by_total[total[by_total] == cutoff].tolist()
        )
        chosen = [*sure.tolist(), *(g for _, g in tied[: max_terms - len(sure)])]
    else:
        chosen = by_total.tolist()
    named = sorted((term_name(int(group_term[g])), g) for g in chosen)
    group_column = np.full(len(starts), -1, dtype=np.int64)
    group_column[[g for _, g in named]] = np.arange(len(named))
    column = np.repeat(group_column, df)
    kept = column >= 0
    counts = sp.csr_matrix(
        (tf[kept].astype(np.float64), (cell_row[kept], column[kept])), shape=(n, len(named))
    )
    return counts, [term for term, _ in named], has_text


@dataclass(frozen=True)
class TermFeatures:
    """The modelled creatives' TF-IDF matrix (rows x terms, column-major), its vocabulary, and which
    creatives contain each term."""

    tfidf: sp.csc_matrix
    vocabulary: list[str]
    presence: sp.csc_matrix


def term_features(
    counts: sp.csr_matrix, vocabulary: Sequence[str], progress: ProgressReporter
) -> TermFeatures:
    """TF-IDF of the counted terms, without the ones that cannot tell creatives apart."""
    if counts.shape[1] == 0:
        raise InsufficientData("no term appears in two or more creatives: nothing to learn from the text")
    # A term in every creative ("hi __placeholder__" in a template) says nothing by its presence;
    # its TF-IDF value would only encode the length of the text, which the forest would pick up.
    everywhere = np.bincount(counts.indices, minlength=counts.shape[1]) >= counts.shape[0]
    if everywhere.all():
        raise InsufficientData("every shared term appears in every creative: nothing to compare")
    counts = counts[:, np.flatnonzero(~everywhere)]
    kept = [term for term, drop in zip(vocabulary, everywhere, strict=True) if not drop]
    progress(0.15, "weighting terms")
    tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(counts).astype(np.float32)
    tfidf, kept = merge_identical_terms(sp.csc_matrix(tfidf), kept)
    presence = tfidf.copy()
    presence.data[:] = 1.0
    return TermFeatures(tfidf, kept, presence)


def term_insights(
    features: TermFeatures,
    importances: np.ndarray,
    observed: np.ndarray,
    expected: np.ndarray,
    top: int,
) -> tuple[TermInsight, ...]:
    """The `top` terms the forest used, most important first, each with its support and lift.
    `importances` are the terms' (in vocabulary order); `observed` and `expected` (from the channel's
    rate) are the target's numerator per modelled creative."""
    order = [j for j in np.argsort(-importances, kind="stable") if importances[j] > 0]
    rows = features.presence.shape[0]
    insights = []
    for j in order[:top]:
        with_term = features.presence.indices[features.presence.indptr[j] : features.presence.indptr[j + 1]]
        mask = np.zeros(rows, dtype=bool)
        mask[with_term] = True
        insights.append(
            TermInsight(
                term=features.vocabulary[j],
                importance=float(importances[j]),
                support=int(mask.sum()),
                lift=lift(observed, expected, mask),
            )
        )
    return tuple(insights)


def lift(observed: np.ndarray, expected: np.ndarray, mask: np.ndarray) -> float | None:
    """Observed over expected (from the channel's rate) with the term, relative to without it."""
    exp_with, exp_without = expected[mask].sum(), expected[~mask].sum()
    if exp_with <= 0 or exp_without <= 0:
        return None
    ratio_without = observed[~mask].sum() / exp_without
    if ratio_without <= 0:
        return None
    value = float((observed[mask].sum() / exp_with) / ratio_without - 1.0)
    # Near-zero fractional counts (1e-320 clicks) can push the ratio past the double range.
    return value if math.isfinite(value) else None


def merge_identical_terms(
    matrix: sp.csc_matrix, vocabulary: Sequence[str]
) -> tuple[sp.csc_matrix, list[str]]:
    """Keep one column per set of creatives: when "20%" only ever appears in "20% off", the two are the
    same feature and would split its importance. The longest phrase stands for the group."""
    matrix.sort_indices()
    groups: dict[bytes, int] = {}
    for j in range(matrix.shape[1]):
        key = matrix.indices[matrix.indptr[j] : matrix.indptr[j + 1]].tobytes()
        best = groups.get(key)
        if best is None or _phrase_rank(vocabulary[j]) > _phrase_rank(vocabulary[best]):
            groups[key] = j
    keep = sorted(groups.values())
    if len(keep) == matrix.shape[1]:
        return matrix, list(vocabulary)
    return matrix[:, keep], [vocabulary[j] for j in keep]


def _phrase_rank(term: str) -> tuple[int, int]:
    return term.count(" "), len(term)
