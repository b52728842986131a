"""What content findings mean: rates, a term's direction, and the recommendations drawn from terms
and underperforming creatives."""

from __future__ import annotations

import pytest

from domain.content.rates import ctr, cvr, rpi, safe_rate
from domain.content.recommendations import build_recommendations
from domain.content.result import ReviewAction, TermAction, TermInsight

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


# --- findings and recommendations -------------------------------------------------------------


def test_direction_follows_the_lift() -> None:
    assert TermInsight("free", 0.2, 10, 0.3).direction == "helps"
    assert TermInsight("urgent", 0.1, 10, -0.2).direction == "hurts"
    assert TermInsight("the", 0.0, 10, None).direction == "neutral"
    assert TermInsight("flat", 0.1, 10, 0.0).direction == "neutral"


def test_recommendations_from_terms_and_underperformers() -> None:
    terms = [
        TermInsight("free", 0.30, 120, 0.48),
        TermInsight("urgent", 0.20, 90, -0.30),
        TermInsight("weekly", 0.10, 300, 0.01),  # too small a lift to act on
        TermInsight("20% off", 0.05, 80, 0.25),
    ]
    ids = [f"c{i}" for i in range(25)]
    recs = build_recommendations(terms, "ctr", {"email": ids}, {"email": 400})
    assert [r.title for r in recs] == [
        'Use "free" more',
        'Use "20% off" more',
        'Avoid "urgent"',
        "Review 25 underperforming email creatives",
    ]
    assert "48% higher click-through rate" in recs[0].description
    assert "30% lower" in recs[2].description
    assert recs[0].payload == TermAction(
        action="use_more", term="free", target="ctr", lift=0.48, support=120, importance=0.30
    )
    assert recs[2].payload == TermAction(
        action="avoid", term="urgent", target="ctr", lift=-0.30, support=90, importance=0.20
    )
    review = recs[3].payload
    assert isinstance(review, ReviewAction)
    assert (review.action, review.channel, review.count) == ("review", "email", 25)
    assert review.creative_ids == tuple(ids[:20])
    assert "25 of 400 email creatives" in recs[3].description


def test_at_most_three_terms_each_way() -> None:
    terms = [TermInsight(f"up{i}", 0.1, 10, 0.2) for i in range(5)]
    terms += [TermInsight(f"down{i}", 0.1, 10, -0.2) for i in range(5)]
    recs = build_recommendations(terms, "cvr", {}, {})
    assert [r.title for r in recs] == [
        'Use "up0" more',
        'Use "up1" more',
        'Use "up2" more',
        'Avoid "down0"',
        'Avoid "down1"',
        'Avoid "down2"',
    ]
    assert "conversion rate" in recs[0].description


def test_no_recommendation_without_findings() -> None:
    assert build_recommendations([TermInsight("the", 0.1, 5, None)], "cvr", {"push": []}, {}) == ()
