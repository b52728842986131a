"""The contact-policy request and result as the client spells them: request fields to spec fields,
spec paths in errors back to request paths, and the typed result written as PolicyAnalysisResult."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from policy_sim import SimConfig, simulate

from adapters.frames import PolarsDataset
from adapters.policies.analyzer import PolarsPolicyAnalyzer
from domain.errors import ValidationFailed, field_error
from domain.policies import ContactCaps, PolicyAnalysisResult, PolicySpec
from entrypoints import contract as c
from entrypoints.presenters.jobs import JOB_NAMES, RESULT_PRESENTERS
from entrypoints.presenters.policies import POLICY_NAMES, policy_spec, present_policy_analysis


@pytest.fixture(scope="module")
def result() -> PolicyAnalysisResult:
    frame = simulate(SimConfig(customers=1_500, fatigue_after=4, seed=13))
    return PolarsPolicyAnalyzer().analyze(PolarsDataset(frame), PolicySpec(), lambda f, m="": None)


def test_a_request_with_defaults_is_the_default_spec() -> None:
    body = c.PoliciesRequest.model_validate({"data": {"rows": [{"a": 1}]}})
    assert policy_spec(body) == PolicySpec()


def test_request_fields_fill_their_spec_fields() -> None:
    body = c.PoliciesRequest.model_validate(
        {
            "data": {"rows": [{"a": 1}]},
            "fieldMap": {"customerId": "user", "offerId": "offer"},
            "interactionValues": {"click": ["tap"]},
            "caps": {"daily": 2, "weekly": 5, "monthly": 12},
            "lookbackDays": 30,
            "asOf": "2024-02-01T00:00:00Z",
            "bands": [2, 4],
            "minSamplesPerBand": 5,
            "randomState": 7,
            "alpha": 0.1,
        }
    )
    assert policy_spec(body) == PolicySpec(
        customer_id="user",
        offer_id="offer",
        click_values=("tap",),
        caps=ContactCaps(daily=2, weekly=5, monthly=12),
        lookback_days=30,
        as_of=datetime(2024, 2, 1, tzinfo=UTC).timestamp(),
        bands=(2, 4),
        min_samples_per_band=5,
        random_state=7,
        alpha=0.1,
    )


def test_errors_name_the_request_fields_in_details_and_messages() -> None:
    error = POLICY_NAMES.error(
        ValidationFailed(
            "`min_samples_per_band` is too large",
            [
                field_error("customer_id", "column 'user' is not in the data"),
                field_error("click_values", "value 'open' is also listed in `impression_values`"),
                field_error("field_map", "`customer_id` and `channel` must differ"),
                field_error("interaction_values", "none is mapped"),
                field_error("caps.weekly", "must be >= 1"),
                field_error("lookback_days", "must be between 1 and 3650"),
            ],
        )
    )
    assert error.message == "minSamplesPerBand is too large"
    assert error.details == [
        {"field": "fieldMap.customerId", "message": "column 'user' is not in the data"},
        {
            "field": "interactionValues.click",
            "message": "value 'open' is also listed in interactionValues.impression",
        },
        {"field": "fieldMap", "message": "customerId and channel must differ"},
        {"field": "interactionValues", "message": "none is mapped"},
        {"field": "caps.weekly", "message": "must be >= 1"},
        {"field": "lookbackDays", "message": "must be between 1 and 3650"},
    ]


def test_the_policy_job_is_presented_and_named_by_this_module() -> None:
    assert RESULT_PRESENTERS[PolicyAnalysisResult] is present_policy_analysis
    assert JOB_NAMES["policy_analysis"] is POLICY_NAMES


def test_result_keys_keep_the_wire_order(result: PolicyAnalysisResult) -> None:
    document = present_policy_analysis(result)
    assert list(document) == [
        "summary", "frequencyBands", "fatiguePoint", "channels", "cooldown", "model",
        "recommendedWeeklyCap", "recommendations", "notes", "warnings",
    ]  # fmt: skip
    # Keys the contract declares and keys it does not, interleaved as they always were.
    assert list(document["frequencyBands"][0])[:7] == [
        "band", "minContacts", "maxContacts", "customerWeeks", "convertedWeeks", "conversionRate",
        "conversionRateCi",
    ]  # fmt: skip
    assert list(document["channels"][0])[:7] == [
        "channel", "impressions", "clicks", "conversions", "ctr", "ctrCi", "cvr",
    ]  # fmt: skip
    assert list(document["fatiguePoint"])[-1] == "population"
    assert list(document["cooldown"])[-1] == "maxWeeklyContacts"


def test_the_model_spells_its_features_as_before(result: PolicyAnalysisResult) -> None:
    model = present_policy_analysis(result)["model"]
    assert model["features"][:2] == ["frequency", "frequencySquared"]
    assert list(model["coefficients"])[:3] == ["intercept", "frequency", "frequencySquared"]
    assert list(model["oddsRatios"]) == model["features"]
    assert all(feature.startswith("channel:") for feature in model["features"][2:])


def test_optional_keys_are_omitted_not_null(result: PolicyAnalysisResult) -> None:
    document = present_policy_analysis(result)
    assert "offers" not in document["summary"]
    assert "population" not in document["recommendations"][0]["evidence"]
    with_offers = dataclasses.replace(result, summary=dataclasses.replace(result.summary, offers=3))
    assert present_policy_analysis(with_offers)["summary"]["offers"] == 3
    single = dataclasses.replace(
        result, channels=tuple(dataclasses.replace(ch, frequency_cap=None) for ch in result.channels)
    )
    assert all("frequencyCap" not in ch for ch in present_policy_analysis(single)["channels"])


def test_dates_are_iso_8601_utc(result: PolicyAnalysisResult) -> None:
    summary = present_policy_analysis(result)["summary"]
    assert summary["dateRange"]["from"].endswith("Z") and summary["window"]["to"].endswith("Z")
    start = datetime.fromisoformat(summary["dateRange"]["from"].replace("Z", "+00:00"))
    assert start.timestamp() == pytest.approx(result.summary.date_range.start, abs=1e-6)
    assert summary["window"]["lookbackDays"] == 90
