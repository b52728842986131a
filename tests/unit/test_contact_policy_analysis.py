"""PolarsPolicyAnalyzer end to end, read as the client reads it (the typed result through its
presenter): a hand-checked small log, simulated logs with a known answer, bad data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import polars as pl
import pytest
from policy_sim import DEFAULT_CHANNELS, SimConfig, simulate

from adapters.frames import PolarsDataset
from adapters.policies.analyzer import PolarsPolicyAnalyzer
from domain.errors import InsufficientData, ValidationFailed
from domain.policies import ContactCaps, PolicyAnalysisResult, PolicySpec
from domain.policies.bands import band_index
from entrypoints.presenters.jobs import JobResultPresenter

ANALYZER = PolarsPolicyAnalyzer()
BOUNDS = PolicySpec().bands


def analyze(frame: pl.DataFrame, spec: PolicySpec | None = None) -> dict[str, Any]:
    reports: list[float] = []
    result = ANALYZER.analyze(PolarsDataset(frame), spec or PolicySpec(), lambda f, m="": reports.append(f))
    # Progress only moves forward and ends complete.
    assert reports == sorted(reports) and reports[-1] == 1.0
    assert isinstance(result, PolicyAnalysisResult)
    document = dict(JobResultPresenter().present(result))
    # Plain JSON: no NaN, no numpy scalars.
    json.dumps(document, allow_nan=False)
    return document


def band(result: dict[str, Any], label: str) -> dict[str, Any]:
    return next(b for b in result["frequencyBands"] if b["band"] == label)


def channel(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in result["channels"] if c["channel"] == name)


# --- a small log checked by hand ----------------------------------------------------------------

# Week of Monday 2024-01-08 (complete: the newest row is on its Sunday).
SMALL = [
    # c1: 1 contact, converts.  c2: 1 contact.  -> band "1": 2 customer-weeks, 1 converted.
    ("c1", "email", "2024-01-08T09:00:00Z", "impression"),
    ("c1", "email", "2024-01-08T10:00:00Z", "conversion"),
    ("c2", "email", "2024-01-09T09:00:00Z", "impression"),
    # c3: 2 contacts, a push click that converts.  c4: 3 push contacts, 2 clicks. -> band "2-3".
    ("c3", "email", "2024-01-08T09:00:00Z", "impression"),
    ("c3", "push", "2024-01-10T09:00:00Z", "impression"),
    ("c3", "push", "2024-01-10T09:05:00Z", "click"),
    ("c3", "push", "2024-01-10T09:30:00Z", "Convert"),
    ("c4", "push", "2024-01-08T12:00:00Z", "impression"),
    ("c4", "push", "2024-01-09T12:00:00Z", "impression"),
    ("c4", "push", "2024-01-10T12:00:00Z", "impression"),
    ("c4", "push", "2024-01-09T12:01:00Z", "click"),
    ("c4", "push", "2024-01-10T12:01:00Z", "CLICK"),
    # c5: 4 sms contacts, one clicked and converted. -> band "4-5".
    ("c5", "sms", "2024-01-08T08:00:00Z", "impression"),
    ("c5", "sms", "2024-01-10T08:00:00Z", "impression"),
    ("c5", "sms", "2024-01-12T08:00:00Z", "impression"),
    ("c5", "sms", "2024-01-14T08:00:00Z", "impression"),
    ("c5", "sms", "2024-01-14T08:10:00Z", "click"),
    ("c5", "sms", "2024-01-14T20:00:00Z", "accept"),
    # Noise: unknown types (counted), a row 400 days old (outside the 90-day lookback).
    ("c1", "email", "2024-01-09T09:00:00Z", "dismiss"),
    ("c2", "email", "2024-01-09T09:00:00Z", " Dismiss "),
    ("c2", "email", "2024-01-09T09:00:00Z", None),
    ("c2", "email", "2022-12-01T09:00:00Z", "impression"),
]


def small_frame(timestamps: str = "iso") -> pl.DataFrame:
    customers, channels, stamps, types = zip(*SMALL, strict=True)
    seconds = [datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in stamps]
    column: pl.Series
    if timestamps == "iso":
        column = pl.Series(stamps)
    elif timestamps == "iso_offset":
        # The same instants written in +02:00 and without any offset (naive = UTC).
        column = pl.Series(
            [
                datetime.fromtimestamp(s, UTC).astimezone(timezone(timedelta(hours=2))).isoformat()
                if i % 2
                else datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%d %H:%M:%S")
                for i, s in enumerate(seconds)
            ]
        )
    elif timestamps == "epoch_s":
        column = pl.Series(seconds)
    elif timestamps == "epoch_ms":
        column = pl.Series([int(s * 1000) for s in seconds])
    elif timestamps == "epoch_text":
        column = pl.Series([str(int(s)) for s in seconds])
    else:
        column = pl.Series([datetime.fromtimestamp(s, UTC) for s in seconds])
    return pl.DataFrame(
        {
            "customerId": list(customers),
            "channel": list(channels),
            "timestamp": column,
            "interactionType": list(types),
        }
    )


SMALL_SPEC = PolicySpec(min_samples_per_band=1)


def test_small_log_rates_and_intervals_by_hand() -> None:
    result = analyze(small_frame(), SMALL_SPEC)
    one = band(result, "1")
    assert (one["customerWeeks"], one["convertedWeeks"], one["contacts"], one["conversions"]) == (2, 1, 2, 1)
    assert one["conversionRate"] == pytest.approx(0.5)
    # Wilson 1/2: centre 0.5, half-width 1.96 * sqrt(0.125 + 0.2401) / 2.9207 = 0.4054.
    assert one["conversionRateCi"]["lower"] == pytest.approx(0.0945, abs=5e-4)
    assert one["conversionRateCi"]["upper"] == pytest.approx(0.9055, abs=5e-4)
    two = band(result, "2-3")
    assert (two["customerWeeks"], two["convertedWeeks"], two["contacts"], two["conversions"]) == (2, 1, 5, 1)
    assert two["conversionPerContact"] == pytest.approx(0.2)
    assert two["conversionsPerCustomerWeek"] == pytest.approx(0.5)
    four = band(result, "4-5")
    assert (four["customerWeeks"], four["contacts"], four["conversions"]) == (1, 4, 1)
    assert band(result, "11+")["customerWeeks"] == 0

    push = channel(result, "push")
    assert (push["impressions"], push["clicks"], push["conversions"]) == (4, 3, 1)
    assert push["ctr"] == pytest.approx(0.75)
    # Wilson 3/4: centre (0.75 + 0.4802) / 1.9604 = 0.6275, half-width 0.3269.
    assert push["ctrCi"]["lower"] == pytest.approx(0.3006, abs=5e-4)
    assert push["ctrCi"]["upper"] == pytest.approx(0.9544, abs=5e-4)
    assert push["cvr"] == pytest.approx(1 / 3)
    assert push["cvrCi"]["lower"] == pytest.approx(0.0615, abs=5e-4)
    assert push["cvrCi"]["upper"] == pytest.approx(0.7923, abs=5e-4)
    email = channel(result, "email")
    assert (email["impressions"], email["clicks"], email["conversions"]) == (3, 0, 1)
    assert email["ctr"] == 0.0 and email["cvr"] is None
    sms = channel(result, "sms")
    assert (sms["ctr"], sms["cvr"]) == (0.25, 1.0)
    # Ranked by conversions per impression (email 1/3, push 1/4, sms 1/4), ties by CTR (push 0.75).
    assert [c["channel"] for c in result["channels"]] == ["email", "push", "sms"]
    assert [c["rank"] for c in result["channels"]] == [1, 2, 3]

    summary = result["summary"]
    assert summary["rows"] == len(SMALL)
    assert summary["unknownInteractionTypes"] == {"dismiss": 2, "(missing)": 1}
    assert summary["outsideLookback"] == 1
    assert summary["rowsUsed"] == len(SMALL) - 3 - 1
    assert (summary["customers"], summary["customerWeeks"], summary["weeks"]) == (5, 5, 1)
    assert summary["dateRange"] == {"from": "2024-01-08T08:00:00Z", "to": "2024-01-14T20:00:00Z"}
    assert summary["interactions"] == {"impressions": 11, "clicks": 4, "conversions": 3}
    assert any("not mapped" in w for w in result["warnings"])


@pytest.mark.parametrize("timestamps", ["iso_offset", "epoch_s", "epoch_ms", "epoch_text", "datetime"])
def test_every_timestamp_format_gives_the_same_analysis(timestamps: str) -> None:
    reference = analyze(small_frame("iso"), SMALL_SPEC)
    result = analyze(small_frame(timestamps), SMALL_SPEC)
    assert result["frequencyBands"] == reference["frequencyBands"]
    assert result["channels"] == reference["channels"]
    assert result["summary"]["dateRange"] == reference["summary"]["dateRange"]
    assert result["summary"]["unparseableTimestamps"] == 0


def test_unparseable_timestamps_and_missing_ids_are_counted_and_dropped() -> None:
    frame = small_frame().vstack(
        pl.DataFrame(
            {
                "customerId": ["c9", "c9", None, "c9"],
                "channel": ["email", "email", "email", None],
                "timestamp": ["yesterday", "2024-13-45T00:00:00Z", "2024-01-09T09:00:00Z", None],
                "interactionType": ["impression"] * 4,
            }
        )
    )
    result = analyze(frame, SMALL_SPEC)
    summary = result["summary"]
    assert summary["unparseableTimestamps"] == 2
    assert summary["missingTimestamps"] == 1
    assert summary["missingCustomerIds"] == 1
    assert summary["customers"] == 5  # c9 had no usable row
    assert band(result, "1")["customerWeeks"] == 2
    assert any("could not be parsed" in w for w in result["warnings"])


def test_as_of_ends_the_window() -> None:
    as_of = datetime(2024, 1, 11, tzinfo=UTC).timestamp()
    result = analyze(small_frame(), PolicySpec(min_samples_per_band=1, as_of=as_of))
    assert result["summary"]["window"]["to"] == "2024-01-11T00:00:00Z"
    # The week of Jan 8 is no longer complete: no customer-week is measured.
    assert result["summary"]["customerWeeks"] == 0
    assert result["summary"]["outsideLookback"] == 1 + 4  # the old row and the 4 rows after as_of
    assert result["recommendations"] == []
    assert any("complete calendar week" in w for w in result["warnings"])


# --- simulated logs with a known answer ---------------------------------------------------------


@pytest.fixture(scope="module")
def fatigued() -> dict[str, Any]:
    return analyze(simulate(SimConfig(fatigue_after=5, seed=7)))


def test_recovers_the_fatigue_point_within_one_band(fatigued: dict[str, Any]) -> None:
    cap = fatigued["recommendedWeeklyCap"]
    assert cap is not None
    assert abs(band_index(cap, BOUNDS) - band_index(5, BOUNDS)) <= 1
    assert cap < PolicySpec().caps.weekly
    fatigue = fatigued["fatiguePoint"]
    assert fatigue["detected"] and fatigue["pValue"] < fatigue["adjustedAlpha"]
    assert fatigue["fatiguedBand"] == "6-7"
    global_caps = [r for r in fatigued["recommendations"] if r["payload"]["scope"] == "global"]
    assert global_caps[0]["title"] == f"Set frequency cap to {cap}/week"
    assert global_caps[0]["payload"]["ruleType"] == "frequency_cap"
    assert global_caps[0]["payload"]["maxContacts"] == cap
    # The model sees the hump too: conversion probability peaks inside the capped range.
    model = fatigued["model"]
    assert model["coefficients"]["frequencySquared"] < 0
    assert 3 <= model["peakFrequency"] <= 7
    assert 0.6 < model["auc"] <= 1.0
    assert set(model["oddsRatios"]) == set(model["coefficients"]) - {"intercept"}


def test_ranks_channels_as_simulated(fatigued: dict[str, Any]) -> None:
    truth = {c.name: c for c in DEFAULT_CHANNELS}

    def order(values: dict[str, float]) -> list[str]:
        return sorted(values, key=lambda name: -values[name])

    found = {c["channel"]: c for c in fatigued["channels"]}
    assert order({n: found[n]["ctr"] for n in truth}) == order({n: c.ctr for n, c in truth.items()})
    assert order({n: found[n]["cvr"] for n in truth}) == order({n: c.cvr for n, c in truth.items()})
    expected = order({n: c.ctr * c.cvr for n, c in truth.items()})
    assert [c["channel"] for c in fatigued["channels"]] == expected
    # CVR is unaffected by fatigue (it acts on clicks): the simulated value lies in the interval.
    for name, sim in truth.items():
        ci = found[name]["cvrCi"]
        assert ci["lower"] <= sim.cvr <= ci["upper"]


@pytest.mark.parametrize("seed", [21, 22])
def test_no_fatigue_invents_no_cap_below_the_configured_one(seed: int) -> None:
    result = analyze(simulate(SimConfig(fatigue_after=None, seed=seed)))
    assert not result["fatiguePoint"]["detected"]
    assert result["recommendedWeeklyCap"] in (None, 10)
    caps = [r for r in result["recommendations"] if r["payload"]["ruleType"] == "frequency_cap"]
    assert all(r["payload"]["maxContacts"] == 10 for r in caps)
    assert result["cooldown"]["recommendedDays"] is None


def test_a_channel_mix_shift_is_not_mistaken_for_fatigue() -> None:
    # Busy weeks are push-heavy and push converts least: raw conversion per contact falls with
    # frequency although no contact tires anyone.
    result = analyze(simulate(SimConfig(fatigue_after=None, tilt={"push": 3.0}, seed=8)))
    rates = [b["conversionPerContact"] for b in result["frequencyBands"]]
    assert rates[-1] < 0.75 * max(rates)
    assert result["fatiguePoint"]["adjustedForChannelMix"] is True
    assert not result["fatiguePoint"]["detected"]
    assert result["recommendedWeeklyCap"] in (None, 10)


def test_a_channel_that_tires_early_gets_its_own_cap() -> None:
    config = SimConfig(
        customers=5_000, single_channel=True, fatigue_after=7, channel_fatigue_after={"sms": 3}, seed=5
    )
    result = analyze(simulate(config))
    assert result["recommendedWeeklyCap"] == 7
    by_scope = {(r["payload"]["scope"], r["payload"]["channel"]): r for r in result["recommendations"]}
    sms = by_scope[("channel", "sms")]
    assert sms["payload"]["maxContacts"] == 3 and sms["title"] == "Set sms frequency cap to 3/week"
    assert ("channel", "email") not in by_scope and ("channel", "push") not in by_scope
    assert channel(result, "sms")["frequencyCap"]["recommended"] is True


def test_recommendations_never_exceed_the_configured_caps() -> None:
    caps = ContactCaps(daily=2, weekly=3, monthly=9)
    result = analyze(simulate(SimConfig(customers=1_500, fatigue_after=5, seed=9)), PolicySpec(caps=caps))
    assert result["recommendedWeeklyCap"] is not None and result["recommendedWeeklyCap"] <= 3
    assert result["recommendations"]
    for rec in result["recommendations"]:
        payload = rec["payload"]
        if payload["ruleType"] == "frequency_cap":
            assert payload["maxContacts"] <= caps.weekly
        assert payload["config"]["maxPerDay"] <= caps.daily
        assert payload["config"]["maxPerWeek"] <= caps.weekly
        assert payload["config"]["maxPerMonth"] <= caps.monthly
        assert 0.0 <= rec["confidence"] <= 1.0


def test_row_order_does_not_change_the_result() -> None:
    frame = simulate(SimConfig(customers=1_200, fatigue_after=4, seed=13))
    first = analyze(frame)
    second = analyze(frame.sample(fraction=1.0, shuffle=True, seed=3))
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


# --- data problems ------------------------------------------------------------------------------


def test_no_conversions_explains_instead_of_failing() -> None:
    frame = simulate(SimConfig(customers=800, seed=4)).filter(pl.col("interactionType") != "conversion")
    result = analyze(frame)
    assert result["recommendations"] == []
    assert result["recommendedWeeklyCap"] is None
    assert not result["fatiguePoint"]["testable"]
    assert result["model"] is None
    assert any("No conversions" in w for w in result["warnings"])
    assert any("No frequency cap recommended" in n for n in result["notes"])


def test_a_single_channel_is_reported() -> None:
    frame = simulate(SimConfig(customers=1_500, seed=4)).filter(pl.col("channel") == "email")
    result = analyze(frame)
    assert [c["channel"] for c in result["channels"]] == ["email"]
    assert any("Only one channel" in w for w in result["warnings"])
    assert result["model"] is not None
    assert result["model"]["features"] == ["frequency", "frequencySquared"]
    assert result["fatiguePoint"]["adjustedForChannelMix"] is False


def test_too_few_customer_weeks_gives_no_recommendation() -> None:
    result = analyze(simulate(SimConfig(customers=6, weeks=2, seed=4)))
    assert result["recommendations"] == []
    assert result["recommendedWeeklyCap"] is None
    assert any("customer-weeks" in w for w in result["warnings"])
    assert result["notes"]


def test_unknown_interaction_values_are_counted_not_fatal() -> None:
    frame = simulate(SimConfig(customers=300, dismiss_rate=0.2, seed=4))
    result = analyze(frame)
    dismissed = frame.filter(pl.col("interactionType") == "dismiss").height
    assert dismissed > 0
    assert result["summary"]["unknownInteractionTypes"] == {"dismiss": dismissed}
    assert result["summary"]["rowsUsed"] == frame.height - dismissed


@pytest.mark.parametrize(
    "frame",
    [
        pl.DataFrame(
            schema={
                "customerId": pl.Utf8,
                "channel": pl.Utf8,
                "timestamp": pl.Utf8,
                "interactionType": pl.Utf8,
            }
        ),
        pl.DataFrame(
            {
                "customerId": ["a"],
                "channel": ["email"],
                "timestamp": ["2024-01-01"],
                "interactionType": ["open"],
            }
        ),
        pl.DataFrame(
            {
                "customerId": ["a"],
                "channel": ["email"],
                "timestamp": ["soon"],
                "interactionType": ["impression"],
            }
        ),
        # Clicks and conversions but no impression: contact frequency cannot be measured.
        pl.DataFrame(
            {
                "customerId": ["a", "a"],
                "channel": ["email", "email"],
                "timestamp": ["2024-01-01", "2024-01-02"],
                "interactionType": ["click", "conversion"],
            }
        ),
    ],
    ids=["empty", "no-mapped-type", "no-timestamp", "no-impression"],
)
def test_nothing_analysable_is_insufficient_data(frame: pl.DataFrame) -> None:
    with pytest.raises(InsufficientData):
        ANALYZER.analyze(PolarsDataset(frame), PolicySpec(), lambda f, m="": None)


def test_a_missing_column_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        ANALYZER.analyze(PolarsDataset(small_frame()), PolicySpec(channel="medium"), lambda f, m="": None)
    # The domain names the spec field; the presenters spell it as the request does (fieldMap.channel).
    assert caught.value.details == [{"field": "channel", "message": "column 'medium' is not in the data"}]
