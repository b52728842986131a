"""Counting terms over a column of texts: the same terms as the domain's reference rules, the same
vocabulary as scikit-learn's CountVectorizer, phrases standing for the words they always contain,
and a term's lift."""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from creatives_sim import synthetic_creatives
from sklearn.feature_extraction.text import CountVectorizer

from adapters.content import terms
from adapters.content.terms import lift, merge_identical_terms, term_counts
from domain.content.text import PLACEHOLDER_TOKEN, creative_terms

TRICKY = [
    "<html><body><p>Hi {{first_name}},</p><p>Get 20% OFF &amp; free shipping&nbsp;today!</p></body></html>",
    "Save 20 % now {var} ${x} *|FNAME|* {% if a %}x{% endif %}",
    "Visit https://ex.com/a?utm=1 or www.foo.com. Don\u2019t miss 9.99 $ 1,000 24h \U0001f525\U0001f525",
    "<style>p{color:red}</style><!-- c --><script>var a=1;</script>Body <B>Bold</B>",
    "Price < 20 and > 10 &eacute;t&eacute; &#233; CAF\u00c9",
    None,
    "",
    "<p></p>",
    "free FREE Free free gift",
    "Cafe\u0301 cr\u00e8me Caf&#101;&#x301; \u2018quoted\u2019",
    # Entities html.unescape decodes once, with its legacy rules: the vectorized pass must agree.
    "&amp;nbsp; &ampnbsp; &notit; &#38;lt; &nbsp no-semicolon Tom & Jerry &AMP; &#x1F525; &bogus; &copy2024",
    "\u041f\u0420\u0418\u0412\u0415\u0422 \u03b3\u03b5\u03b9\u03ac \u00c5ngstr\u00f6m 50\u00a0% OFF",
]


def test_vectorized_terms_equal_the_domain_reference() -> None:
    rng = np.random.default_rng(0)
    subjects = [TRICKY[i % len(TRICKY)] for i in range(40)]
    bodies = [TRICKY[int(k)] for k in rng.integers(len(TRICKY), size=40)]
    frame = pl.DataFrame({"subject": subjects, "body": bodies})
    counts, vocabulary, has_text = term_counts(frame, min_df=1, max_terms=10**6)
    dense = counts.toarray()
    for i, texts in enumerate(zip(subjects, bodies, strict=True)):
        expected = Counter(creative_terms(texts))
        got = {vocabulary[j]: int(dense[i, j]) for j in np.flatnonzero(dense[i])}
        assert got == dict(expected)
        assert has_text[i] == bool(expected)
    assert PLACEHOLDER_TOKEN in vocabulary


def test_vocabulary_matches_sklearn_count_vectorizer() -> None:
    frame = synthetic_creatives(300, seed=2).select("subject", "body")
    counts, vocabulary, _ = term_counts(frame, min_df=2, max_terms=10**6)
    reference = CountVectorizer(analyzer=creative_terms, min_df=2)
    expected = reference.fit_transform(list(zip(frame["subject"], frame["body"], strict=True)))
    assert vocabulary == reference.get_feature_names_out().tolist()
    assert (counts != expected).nnz == 0


def test_counting_is_the_same_when_codes_must_be_compacted(monkeypatch: pytest.MonkeyPatch) -> None:
    # Millions of distinct tokens would overflow the int64 cell keys: the dense-code path must count
    # exactly what the direct one does.
    frame = synthetic_creatives(200, seed=4).select("subject", "body")
    direct, vocabulary, has_text = term_counts(frame, min_df=2, max_terms=500)
    monkeypatch.setattr(terms, "MAX_CELL_KEY", 0)
    dense, dense_vocabulary, dense_has_text = term_counts(frame, min_df=2, max_terms=500)
    assert dense_vocabulary == vocabulary
    assert (dense != direct).nnz == 0
    assert (dense_has_text == has_text).all()


def test_the_vocabulary_cap_keeps_the_most_frequent_and_breaks_ties_by_name() -> None:
    frame = pl.DataFrame({"subject": ["b a c", "c b d", "c e d", "a d f", "c g h"]})
    _, vocabulary, _ = term_counts(frame, min_df=2, max_terms=3)
    # Totals: c 4, d 3, a 2, b 2: "a" wins the tie for the last place.
    assert vocabulary == ["a", "c", "d"]


def test_identical_columns_merge_into_the_longest_phrase() -> None:
    matrix = sp.csc_matrix(np.array([[1, 1, 0, 1], [0, 0, 1, 1], [1, 1, 0, 0]], dtype=np.float32))
    merged, names = merge_identical_terms(matrix, ["20%", "20% off", "gift", "off"])
    assert names == ["20% off", "gift", "off"]
    assert merged.shape == (3, 3)


def test_lift_is_observed_over_expected_with_against_without() -> None:
    clicks = np.array([30.0, 10.0, 20.0, 20.0])
    expected = np.array([20.0, 20.0, 20.0, 20.0])
    with_term = np.array([True, False, False, False])
    # With: 30/20 = 1.5; without: 50/60; lift = 1.5 / (5/6) - 1 = 0.8.
    assert lift(clicks, expected, with_term) == pytest.approx(0.8)
    assert lift(clicks, expected, np.ones(4, dtype=bool)) is None
