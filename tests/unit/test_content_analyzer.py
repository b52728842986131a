"""SklearnContentAnalyzer: planted terms found, rates by hand, exclusions counted, flags tested."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from adapters.content import analyzer as content_adapter
from adapters.content.analyzer import (
    ForestSettings,
    SklearnContentAnalyzer,
    _lift,
    _merge_identical_terms,
    _precision_weights,
    term_counts,
    thread_budget,
)
from adapters.frames import PolarsDataset
from domain.content import PLACEHOLDER_TOKEN, ContentSpec, creative_terms
from domain.errors import InsufficientData, ValidationFailed

PLANTED = {"free": 1.5, "20% off": 1.4, "urgent": 0.7, "final notice": 0.65}
# As frequent as the planted terms, with no effect: a ranking that favours frequency would pick them.
DECOYS = ("weekly", "members")
CHANNEL_CTR = {"email": 0.03, "push": 0.06, "banner": 0.01}


def synthetic_creatives(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    letters = list("abcdeghiklmnoprstuwy")
    background = sorted({"".join(rng.choice(letters, size=5)) for _ in range(400)})
    channels = rng.choice(list(CHANNEL_CTR), size=n)
    marks = {term: rng.random(n) < 0.15 for term in (*PLANTED, *DECOYS)}
    subjects, bodies = [], []
    for i in range(n):
        subject = list(rng.choice(background, size=5))
        body = list(rng.choice(background, size=25))
        for term, has in marks.items():
            if has[i]:
                target = subject if rng.random() < 0.7 else body
                target.insert(
                    int(rng.integers(len(target) + 1)), term.upper() if rng.random() < 0.3 else term
                )
        subjects.append(" ".join(subject))
        bodies.append(f"<p>Hi {{{{first_name}}}},</p><p>{' '.join(body)}</p>&nbsp;")
    effect = np.ones(n)
    for term, multiplier in PLANTED.items():
        effect *= np.where(marks[term], multiplier, 1.0)
    rate = np.array([CHANNEL_CTR[c] for c in channels]) * effect * rng.lognormal(0.0, 0.15, n)
    impressions = rng.integers(2_000, 20_000, n)
    clicks = rng.binomial(impressions, np.clip(rate, 0, 1))
    conversions = rng.binomial(clicks, 0.1)
    return pl.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "channel": channels,
            "subject": subjects,
            "body": bodies,
            "impressions": impressions,
            "clicks": clicks,
            "conversions": conversions,
            "revenue": conversions * 25.0,
        }
    )


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[float, str]] = []

    def __call__(self, fraction: float, message: str = "") -> None:
        self.reports.append((fraction, message))


@pytest.fixture(scope="module")
def planted_frame() -> pl.DataFrame:
    return synthetic_creatives(3000, seed=11)


@pytest.fixture(scope="module")
def planted(planted_frame: pl.DataFrame) -> tuple[dict[str, Any], Recorder]:
    recorder = Recorder()
    result = SklearnContentAnalyzer(n_jobs=1).analyze(
        PolarsDataset(planted_frame), ContentSpec(top_terms=30), recorder
    )
    return result, recorder


def analyze(frame: pl.DataFrame, spec: ContentSpec | None = None, **settings: Any) -> dict[str, Any]:
    analyzer = SklearnContentAnalyzer(ForestSettings(**settings) if settings else None, n_jobs=1)
    return analyzer.analyze(PolarsDataset(frame), spec or ContentSpec(), Recorder())


# --- the planted signal -----------------------------------------------------------------------


def test_planted_terms_rank_first_with_their_direction(planted: tuple[dict[str, Any], Recorder]) -> None:
    result, _ = planted
    top = result["topTerms"]
    first = {t["term"]: t["direction"] for t in top[: len(PLANTED)]}
    assert first == {term: "helps" if m > 1 else "hurts" for term, m in PLANTED.items()}
    lifts = {t["term"]: t["lift"] for t in top}
    # The lift is channel-adjusted observed/expected: close to the planted multiplier.
    for term, multiplier in PLANTED.items():
        assert lifts[term] == pytest.approx(multiplier - 1, abs=0.12)


def test_neutral_terms_do_not_rank_near_the_top(planted: tuple[dict[str, Any], Recorder]) -> None:
    result, _ = planted
    top = result["topTerms"]
    ranked = [t["term"] for t in top]
    for decoy in DECOYS:
        assert decoy not in ranked[:10]
    planted_words = {word for term in PLANTED for word in term.split()}
    # Below the planted four, the strongest other term is far weaker than the weakest planted one.
    others = [t for t in top if not planted_words & set(t["term"].split())]
    assert others[0]["importance"] < 0.2 * top[len(PLANTED) - 1]["importance"]
    decoy_lifts = [t["lift"] for t in top if t["term"] in DECOYS]
    assert all(abs(lift) < 0.06 for lift in decoy_lifts)


def test_a_term_always_inside_a_phrase_is_reported_as_the_phrase(
    planted: tuple[dict[str, Any], Recorder],
) -> None:
    result, _ = planted
    ranked = {t["term"] for t in result["topTerms"]}
    # "20%" and "off" only ever occur as "20% off" (same creatives): one feature, the phrase.
    assert "20% off" in ranked
    assert not ranked & {"20%", "off", "final", "notice"}


def test_a_term_in_every_creative_is_not_a_feature(planted: tuple[dict[str, Any], Recorder]) -> None:
    result, _ = planted
    # Every body opens with "Hi {{first_name}}": present everywhere, its TF-IDF value would only
    # measure the length of the text.
    assert not {"hi", PLACEHOLDER_TOKEN, f"hi {PLACEHOLDER_TOKEN}"} & {t["term"] for t in result["topTerms"]}


def test_support_counts_creatives_containing_the_term(
    planted: tuple[dict[str, Any], Recorder], planted_frame: pl.DataFrame
) -> None:
    result, _ = planted
    text = (planted_frame["subject"] + " " + planted_frame["body"]).str.to_lowercase()
    by_term = {t["term"]: t["support"] for t in result["topTerms"]}
    assert by_term["free"] == int(text.str.contains("free").sum())
    assert by_term["urgent"] == int(text.str.contains("urgent").sum())


def test_model_quality_is_reported(planted: tuple[dict[str, Any], Recorder]) -> None:
    result, _ = planted
    model = result["model"]
    assert model["target"] == "ctr"
    assert model["r2Kind"] == "holdout"
    assert 0.3 < model["r2"] < 1.0
    assert model["creatives"] == 3000
    assert model["trainCreatives"] + model["holdoutCreatives"] == 3000
    assert model["trees"] == ForestSettings().n_estimators
    assert 0 < model["terms"] <= ForestSettings().max_vocabulary


def test_progress_is_monotonic_and_reported_while_the_forest_grows(
    planted: tuple[dict[str, Any], Recorder],
) -> None:
    _, recorder = planted
    fractions = [f for f, _ in recorder.reports]
    assert fractions[0] == 0.0
    assert fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    growing = [m for _, m in recorder.reports if m.startswith("grown")]
    assert len(growing) == ForestSettings().n_estimators // ForestSettings().chunk


def test_result_is_strict_json(planted: tuple[dict[str, Any], Recorder]) -> None:
    result, _ = planted
    json.dumps(result, allow_nan=False)
    assert set(result) == {
        "topTerms",
        "channelSummary",
        "creatives",
        "model",
        "excluded",
        "recommendations",
        "warnings",
    }
    recs = result["recommendations"]
    assert {r["type"] for r in recs} == {"content"}
    titles = {r["title"] for r in recs}
    assert {'Use "free" more', 'Use "20% off" more', 'Avoid "urgent"', 'Avoid "final notice"'} <= titles


def test_the_analysis_is_deterministic_whatever_the_thread_count() -> None:
    frame = synthetic_creatives(600, seed=3)
    spec = ContentSpec(min_impressions=0)
    one = SklearnContentAnalyzer(n_jobs=1).analyze(PolarsDataset(frame), spec, Recorder())
    two = SklearnContentAnalyzer(n_jobs=2).analyze(PolarsDataset(frame), spec, Recorder())
    assert one == two


def test_cvr_target_skips_creatives_without_clicks() -> None:
    frame = synthetic_creatives(400, seed=5).with_columns(
        pl.when(pl.col("id").is_in(["c1", "c2"])).then(0).otherwise(pl.col("clicks")).alias("clicks")
    )
    frame = frame.with_columns(pl.min_horizontal("conversions", "clicks").alias("conversions"))
    result = analyze(frame, ContentSpec(target="cvr"))
    assert result["model"]["target"] == "cvr"
    assert result["excluded"] == {"noClicks": 2}
    by_id = {c["id"]: c for c in result["creatives"]}
    assert by_id["c1"]["cvr"] is None
    assert by_id["c1"]["percentileInChannel"] is None


# --- rates, percentiles and flags by hand -----------------------------------------------------


def hand_table() -> pl.DataFrame:
    """24 creatives in two channels with round numbers; texts share words so there is a vocabulary."""
    rows = []
    for i in range(12):
        rows.append(("a", 1000, 50, 5, 100.0, f"Shop sale item{i % 3} now"))
    rows[0] = ("a", 1000, 10, 1, 10.0, "Shop sale item0 now")  # far below the channel: 1% vs 5.4%
    rows[1] = ("a", 1000, 100, 10, 300.0, "Shop sale item1 now")  # far above
    rows[2] = ("a", 1000, 45, 3, 50.0, "Shop sale item2 now")  # a little below: not significant
    for i in range(12):
        rows.append(("b", 2000, 20 + i, 2, 0.0, f"Sale today item{i % 3}"))
    return pl.DataFrame(
        {
            "id": [f"x{i}" for i in range(len(rows))],
            "channel": [r[0] for r in rows],
            "impressions": [r[1] for r in rows],
            "clicks": [r[2] for r in rows],
            "conversions": [r[3] for r in rows],
            "revenue": [r[4] for r in rows],
            "subject": [r[5] for r in rows],
        }
    )


def test_channel_summary_by_hand() -> None:
    result = analyze(hand_table())
    a, b = result["channelSummary"]
    # Channel a: 9 creatives at 50 clicks plus 10 + 100 + 45.
    assert a == {
        "channel": "a",
        "creatives": 12,
        "impressions": 12_000,
        "clicks": 605,
        "conversions": 59,
        "revenue": 1260.0,
        "ctr": pytest.approx(605 / 12_000),
        "cvr": pytest.approx(59 / 605),
        "rpi": pytest.approx(1260 / 12_000),
    }
    # Channel b: clicks 20..31 sum to 306.
    assert b["impressions"] == 24_000
    assert b["clicks"] == 306
    assert b["ctr"] == pytest.approx(306 / 24_000)
    assert b["cvr"] == pytest.approx(24 / 306)
    assert b["rpi"] == 0.0


def test_creative_rates_percentiles_and_flags_by_hand() -> None:
    result = analyze(hand_table())
    by_id = {c["id"]: c for c in result["creatives"]}
    low, high, slight = by_id["x0"], by_id["x1"], by_id["x2"]
    assert low["ctr"] == pytest.approx(0.01)
    assert low["cvr"] == pytest.approx(0.1)
    assert low["rpi"] == pytest.approx(0.01)
    # Lowest of 12: (1 - 0.5) / 12; highest: (12 - 0.5) / 12; the 9 ties at 5% share rank 7.
    assert low["percentileInChannel"] == pytest.approx(100 * 0.5 / 12)
    assert high["percentileInChannel"] == pytest.approx(100 * 11.5 / 12)
    assert by_id["x3"]["percentileInChannel"] == pytest.approx(100 * 6.5 / 12)
    assert low["flags"] == ["underperformer"]
    assert high["flags"] == ["top_performer"]
    # 45 clicks of 1000 against ~5.4% for the rest: P(X <= 45) ~ 0.1, not significant.
    assert slight["flags"] == []
    assert all(by_id[f"x{i}"]["flags"] == [] for i in range(3, 24))
    review = [r for r in result["recommendations"] if r["payload"].get("action") == "review"]
    assert [r["payload"]["creativeIds"] for r in review] == [["x0"]]


def test_revenue_is_optional() -> None:
    result = analyze(hand_table().drop("revenue"))
    assert {(s["revenue"], s["rpi"]) for s in result["channelSummary"]} == {(None, None)}
    assert {c["rpi"] for c in result["creatives"]} == {None}


# --- bad rows ---------------------------------------------------------------------------------


def test_bad_rows_are_excluded_and_counted() -> None:
    base = hand_table()
    bad = pl.DataFrame(
        {
            "id": ["neg", "over", "nullcount", None, "small", "blank", "tagsonly"],
            "channel": ["a"] * 7,
            "impressions": [1000, 100, None, 1000, 50, 1000, 1000],
            "clicks": [-1, 150, 5, 5, 2, 40, 40],
            "conversions": [0, 0, 0, 0, 0, 4, 4],
            "revenue": [0.0] * 7,
            "subject": ["Shop sale"] * 5 + ["", "<p></p> &nbsp;"],
        },
        schema=base.schema,
    )
    result = analyze(pl.concat([base, bad]))
    assert result["excluded"] == {
        "negativeCounts": 1,
        "clicksAboveImpressions": 1,
        "missingCounts": 1,
        "missingId": 1,
        "belowMinImpressions": 1,
        "emptyText": 2,
    }
    by_id = {c["id"]: c for c in result["creatives"]}
    # Invalid rows are nowhere; valid ones left out of the model still count in the summaries.
    assert not {"neg", "over", "nullcount"} & set(by_id)
    assert None not in by_id
    assert by_id["small"]["flags"] == ["low_volume"]
    assert by_id["small"]["percentileInChannel"] is None
    assert by_id["blank"]["percentileInChannel"] is not None
    assert result["channelSummary"][0]["creatives"] == 12 + 3
    assert result["model"]["creatives"] == 24


def test_more_conversions_than_clicks_is_kept_with_a_warning() -> None:
    frame = hand_table().with_columns(
        pl.when(pl.col("id") == "x5").then(80).otherwise(pl.col("conversions")).alias("conversions")
    )
    result = analyze(frame)
    assert "1 creatives have more conversions than clicks" in result["warnings"]
    assert {c["id"]: c["cvr"] for c in result["creatives"]}["x5"] == pytest.approx(80 / 50)


def test_missing_text_fields_are_named_in_a_warning() -> None:
    result = analyze(hand_table())
    assert "text fields not in the data, ignored: headline, body, ctaText" in result["warnings"]


def test_no_creative_above_min_impressions() -> None:
    with pytest.raises(InsufficientData) as caught:
        analyze(hand_table(), ContentSpec(min_impressions=5000))
    assert "belowMinImpressions" in caught.value.details[0]["message"]


def test_too_few_creatives_for_a_model() -> None:
    with pytest.raises(InsufficientData):
        analyze(hand_table().head(15))


def test_no_shared_term_means_nothing_to_learn() -> None:
    frame = hand_table().with_columns(pl.col("id").alias("subject"))
    with pytest.raises(InsufficientData, match="no term appears in two"):
        analyze(frame)


def test_every_creative_at_its_channel_rate_means_nothing_to_explain() -> None:
    frame = hand_table().with_columns(pl.lit(50).alias("clicks"), pl.lit(1000).alias("impressions"))
    with pytest.raises(InsufficientData, match="nothing to explain"):
        analyze(frame)


def test_the_spec_is_checked_against_the_data() -> None:
    with pytest.raises(ValidationFailed) as caught:
        analyze(hand_table().drop("clicks"))
    assert caught.value.details[0]["field"] == "clicks"


# --- the parts ----------------------------------------------------------------------------------

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
    monkeypatch.setattr(content_adapter, "MAX_CELL_KEY", 0)
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
    import scipy.sparse as sp

    matrix = sp.csc_matrix(np.array([[1, 1, 0, 1], [0, 0, 1, 1], [1, 1, 0, 0]], dtype=np.float32))
    merged, names = _merge_identical_terms(matrix, ["20%", "20% off", "gift", "off"])
    assert names == ["20% off", "gift", "off"]
    assert merged.shape == (3, 3)


def test_lift_is_observed_over_expected_with_against_without() -> None:
    clicks = np.array([30.0, 10.0, 20.0, 20.0])
    expected = np.array([20.0, 20.0, 20.0, 20.0])
    with_term = np.array([True, False, False, False])
    # With: 30/20 = 1.5; without: 50/60; lift = 1.5 / (5/6) - 1 = 0.8.
    assert _lift(clicks, expected, with_term) == pytest.approx(0.8)
    assert _lift(clicks, expected, np.ones(4, dtype=bool)) is None


def test_weights_grow_with_traffic_but_are_capped_by_the_spread_between_creatives() -> None:
    trials = np.array([100.0, 1_000.0, 100_000.0, 10_000_000.0])
    rate = np.full(4, 0.05)
    # No spread beyond sampling noise: weights are proportional to impressions.
    same = _precision_weights(np.array([1.0, 1.0, 1.0, 1.0]), trials, rate)
    assert same / same[0] == pytest.approx(trials / trials[0])
    # A real spread between creatives: more traffic still weighs more, but 10M is not 100x 100k.
    spread = _precision_weights(np.array([0.5, 1.5, 0.7, 1.3]), trials, rate)
    assert list(spread) == sorted(spread)
    assert spread[3] / spread[2] < 1.01
    assert spread[3] / spread[0] < 20


def test_thread_budget_reads_omp_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert thread_budget() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert thread_budget() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert thread_budget() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "0")
    assert thread_budget() == 1
