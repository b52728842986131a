"""SklearnContentAnalyzer: planted terms found, rates by hand, exclusions counted, flags tested."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from creatives_sim import DECOYS, PLANTED, hand_table, synthetic_creatives

from adapters.content.analyzer import SklearnContentAnalyzer
from adapters.content.forest import ForestSettings
from adapters.frames import PolarsDataset
from domain.content.result import (
    ChannelSummary,
    ContentAnalysisResult,
    CreativeFlag,
    ExclusionReason,
    ReviewAction,
)
from domain.content.spec import ContentSpec
from domain.content.text import PLACEHOLDER_TOKEN
from domain.errors import InsufficientData, ValidationFailed


class Recorder:
    def __init__(self) -> None:
        self.reports: list[tuple[float, str]] = []

    def __call__(self, fraction: float, message: str = "") -> None:
        self.reports.append((fraction, message))


Planted = tuple[ContentAnalysisResult, Recorder]


@pytest.fixture(scope="module")
def planted_frame() -> pl.DataFrame:
    return synthetic_creatives(3000, seed=11)


@pytest.fixture(scope="module")
def planted(planted_frame: pl.DataFrame) -> Planted:
    recorder = Recorder()
    result = SklearnContentAnalyzer(n_jobs=1).analyze(
        PolarsDataset(planted_frame), ContentSpec(top_terms=30), recorder
    )
    return result, recorder


def analyze(frame: pl.DataFrame, spec: ContentSpec | None = None, **settings: Any) -> ContentAnalysisResult:
    analyzer = SklearnContentAnalyzer(ForestSettings(**settings) if settings else None, n_jobs=1)
    return analyzer.analyze(PolarsDataset(frame), spec or ContentSpec(), Recorder())


# --- the planted signal -----------------------------------------------------------------------


def test_planted_terms_rank_first_with_their_direction(
    planted: Planted,
) -> None:
    result, _ = planted
    top = result.top_terms
    first = {t.term: t.direction for t in top[: len(PLANTED)]}
    assert first == {term: "helps" if m > 1 else "hurts" for term, m in PLANTED.items()}
    lifts = {t.term: t.lift for t in top}
    # The lift is channel-adjusted observed/expected: close to the planted multiplier.
    for term, multiplier in PLANTED.items():
        assert lifts[term] == pytest.approx(multiplier - 1, abs=0.12)


def test_neutral_terms_do_not_rank_near_the_top(planted: Planted) -> None:
    result, _ = planted
    top = result.top_terms
    ranked = [t.term for t in top]
    for decoy in DECOYS:
        assert decoy not in ranked[:10]
    planted_words = {word for term in PLANTED for word in term.split()}
    # Below the planted four, the strongest other term is far weaker than the weakest planted one.
    others = [t for t in top if not planted_words & set(t.term.split())]
    assert others[0].importance < 0.2 * top[len(PLANTED) - 1].importance
    decoy_lifts = [t.lift for t in top if t.term in DECOYS]
    assert all(lift is not None and abs(lift) < 0.06 for lift in decoy_lifts)


def test_a_term_always_inside_a_phrase_is_reported_as_the_phrase(
    planted: Planted,
) -> None:
    result, _ = planted
    ranked = {t.term for t in result.top_terms}
    # "20%" and "off" only ever occur as "20% off" (same creatives): one feature, the phrase.
    assert "20% off" in ranked
    assert not ranked & {"20%", "off", "final", "notice"}


def test_a_term_in_every_creative_is_not_a_feature(planted: Planted) -> None:
    result, _ = planted
    # Every body opens with "Hi {{first_name}}": present everywhere, its TF-IDF value would only
    # measure the length of the text.
    assert not {"hi", PLACEHOLDER_TOKEN, f"hi {PLACEHOLDER_TOKEN}"} & {t.term for t in result.top_terms}


def test_support_counts_creatives_containing_the_term(planted: Planted, planted_frame: pl.DataFrame) -> None:
    result, _ = planted
    text = (planted_frame["subject"] + " " + planted_frame["body"]).str.to_lowercase()
    by_term = {t.term: t.support for t in result.top_terms}
    assert by_term["free"] == int(text.str.contains("free").sum())
    assert by_term["urgent"] == int(text.str.contains("urgent").sum())


def test_model_quality_is_reported(planted: Planted) -> None:
    result, _ = planted
    model = result.model
    assert model.target == "ctr"
    assert model.r2_kind == "holdout"
    assert model.r2 is not None and 0.3 < model.r2 < 1.0
    assert model.creatives == 3000
    assert model.train_creatives + model.holdout_creatives == 3000
    assert model.trees == ForestSettings().n_estimators
    assert 0 < model.terms <= ForestSettings().max_vocabulary
    # Three channels with different CTRs, yet the target is relative to the channel's rate.
    assert 0 <= model.channel_importance < 0.1


def test_progress_is_monotonic_and_reported_while_the_forest_grows(
    planted: Planted,
) -> None:
    _, recorder = planted
    fractions = [f for f, _ in recorder.reports]
    assert fractions[0] == 0.0
    assert fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    growing = [m for _, m in recorder.reports if m.startswith("grown")]
    assert len(growing) == ForestSettings().n_estimators // ForestSettings().chunk


def test_planted_terms_become_recommendations(planted: Planted) -> None:
    result, _ = planted
    titles = {r.title for r in result.recommendations}
    assert {'Use "free" more', 'Use "20% off" more', 'Avoid "urgent"', 'Avoid "final notice"'} <= titles


def test_the_result_holds_python_values_only(planted: Planted) -> None:
    result, _ = planted
    term, summary, creative = result.top_terms[0], result.channel_summary[0], result.creatives[0]
    assert type(term.importance) is float and type(term.support) is int
    assert type(summary.impressions) is int and type(summary.creatives) is int
    assert type(creative.ctr) is float and type(creative.percentile_in_channel) is float
    assert type(result.model.channel_importance) is float and type(result.model.trees) is int
    assert isinstance(result.creatives, tuple) and isinstance(creative.flags, tuple)


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
    assert result.model.target == "cvr"
    assert result.excluded == ((ExclusionReason.NO_CLICKS, 2),)
    by_id = {c.id: c for c in result.creatives}
    assert by_id["c1"].cvr is None
    assert by_id["c1"].percentile_in_channel is None


def test_integer_ids_are_kept_as_integers() -> None:
    frame = hand_table().with_columns(pl.Series("id", list(range(100, 124))))
    assert {c.id for c in analyze(frame).creatives} == set(range(100, 124))


# --- rates, percentiles and flags by hand -----------------------------------------------------


def test_channel_summary_by_hand() -> None:
    result = analyze(hand_table())
    a, b = result.channel_summary
    # Channel a: 9 creatives at 50 clicks plus 10 + 100 + 45.
    assert a == ChannelSummary(
        channel="a",
        creatives=12,
        impressions=12_000,
        clicks=605,
        conversions=59,
        revenue=1260.0,
        ctr=pytest.approx(605 / 12_000),
        cvr=pytest.approx(59 / 605),
        rpi=pytest.approx(1260 / 12_000),
    )
    # Channel b: clicks 20..31 sum to 306.
    assert b.impressions == 24_000
    assert b.clicks == 306
    assert b.ctr == pytest.approx(306 / 24_000)
    assert b.cvr == pytest.approx(24 / 306)
    assert b.rpi == 0.0


def test_creative_rates_percentiles_and_flags_by_hand() -> None:
    result = analyze(hand_table())
    by_id = {c.id: c for c in result.creatives}
    low, high, slight = by_id["x0"], by_id["x1"], by_id["x2"]
    assert low.ctr == pytest.approx(0.01)
    assert low.cvr == pytest.approx(0.1)
    assert low.rpi == pytest.approx(0.01)
    # Lowest of 12: (1 - 0.5) / 12; highest: (12 - 0.5) / 12; the 9 ties at 5% share rank 7.
    assert low.percentile_in_channel == pytest.approx(100 * 0.5 / 12)
    assert high.percentile_in_channel == pytest.approx(100 * 11.5 / 12)
    assert by_id["x3"].percentile_in_channel == pytest.approx(100 * 6.5 / 12)
    assert low.flags == (CreativeFlag.UNDERPERFORMER,)
    assert high.flags == (CreativeFlag.TOP_PERFORMER,)
    # 45 clicks of 1000 against ~5.4% for the rest: P(X <= 45) ~ 0.1, not significant.
    assert slight.flags == ()
    assert all(by_id[f"x{i}"].flags == () for i in range(3, 24))
    review = [r.payload for r in result.recommendations if isinstance(r.payload, ReviewAction)]
    assert [p.creative_ids for p in review] == [("x0",)]


def test_revenue_is_optional() -> None:
    result = analyze(hand_table().drop("revenue"))
    assert {(s.revenue, s.rpi) for s in result.channel_summary} == {(None, None)}
    assert {c.rpi for c in result.creatives} == {None}


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
    # Sorted by reason.
    assert result.excluded == (
        (ExclusionReason.BELOW_MIN_IMPRESSIONS, 1),
        (ExclusionReason.CLICKS_ABOVE_IMPRESSIONS, 1),
        (ExclusionReason.EMPTY_TEXT, 2),
        (ExclusionReason.MISSING_COUNTS, 1),
        (ExclusionReason.MISSING_ID, 1),
        (ExclusionReason.NEGATIVE_COUNTS, 1),
    )
    by_id = {c.id: c for c in result.creatives}
    # Invalid rows are nowhere; valid ones left out of the model still count in the summaries.
    assert not {"neg", "over", "nullcount"} & set(by_id)
    assert by_id["small"].flags == (CreativeFlag.LOW_VOLUME,)
    assert by_id["small"].percentile_in_channel is None
    assert by_id["blank"].percentile_in_channel is not None
    assert result.channel_summary[0].creatives == 12 + 3
    assert result.model.creatives == 24


def test_more_conversions_than_clicks_is_kept_with_a_warning() -> None:
    frame = hand_table().with_columns(
        pl.when(pl.col("id") == "x5").then(80).otherwise(pl.col("conversions")).alias("conversions")
    )
    result = analyze(frame)
    assert "1 creatives have more conversions than clicks" in result.warnings
    assert {c.id: c.cvr for c in result.creatives}["x5"] == pytest.approx(80 / 50)


def test_repeated_ids_and_missing_revenue_are_named_in_warnings() -> None:
    frame = hand_table().with_columns(
        pl.when(pl.col("id") == "x1").then(pl.lit("x0")).otherwise(pl.col("id")).alias("id"),
        pl.when(pl.col("id") == "x3").then(None).otherwise(pl.col("revenue")).alias("revenue"),
    )
    warnings = analyze(frame).warnings
    assert "1 creatives repeat an id already seen" in warnings
    assert "1 creatives have no revenue value; counted as 0" in warnings


def test_missing_text_fields_are_named_in_a_warning() -> None:
    result = analyze(hand_table())
    assert "text fields not in the data, ignored: headline, body, ctaText" in result.warnings


def test_no_creative_above_min_impressions() -> None:
    with pytest.raises(InsufficientData) as caught:
        analyze(hand_table(), ContentSpec(min_impressions=5000))
    assert caught.value.details[0]["field"] == "min_impressions"
    assert "below_min_impressions 24" in caught.value.details[0]["message"]


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
