"""A content analysis request: its defaults, its check against the data's schema, and the names
its errors carry on the wire."""

from __future__ import annotations

import pytest

from domain.content.spec import ContentSpec, validate_content_spec
from domain.data import ColumnKind
from domain.errors import ValidationFailed
from entrypoints import contract as c
from entrypoints.presenters.content import CONTENT_NAMES, content_spec

N = ColumnKind.NUMERIC
C = ColumnKind.CATEGORICAL

SCHEMA = {
    "id": C,
    "channel": C,
    "subject": C,
    "body": C,
    "impressions": N,
    "clicks": N,
    "conversions": N,
    "revenue": N,
}


def test_spec_defaults_are_the_documented_ones() -> None:
    spec = ContentSpec()
    assert spec.id_field == "id"
    assert spec.channel_field == "channel"
    assert spec.text_fields == ("subject", "headline", "body", "ctaText")
    assert (spec.impressions_field, spec.clicks_field, spec.conversions_field, spec.revenue_field) == (
        "impressions",
        "clicks",
        "conversions",
        "revenue",
    )
    assert (spec.target, spec.min_impressions, spec.top_terms, spec.random_state) == ("ctr", 100, 20, 42)


# --- validation -------------------------------------------------------------------------------


def _fields(error: ValidationFailed) -> set[str]:
    return {detail["field"] for detail in error.details}


def test_a_spec_that_fits_the_data_passes() -> None:
    validate_content_spec(ContentSpec(), SCHEMA)
    # Revenue is optional, and absent text fields are fine as long as one is there.
    validate_content_spec(ContentSpec(), {k: v for k, v in SCHEMA.items() if k not in ("revenue", "body")})


@pytest.mark.parametrize("column", ["id", "channel", "impressions", "clicks", "conversions"])
def test_a_missing_required_column_is_named(column: str) -> None:
    schema = {k: v for k, v in SCHEMA.items() if k != column}
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(ContentSpec(), schema)
    assert _fields(caught.value) == {column}


def test_counts_must_be_numeric_and_revenue_too_when_present() -> None:
    schema = {**SCHEMA, "clicks": C, "revenue": C}
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(ContentSpec(), schema)
    assert _fields(caught.value) == {"clicks", "revenue"}


def test_no_text_field_in_the_data() -> None:
    schema = {k: v for k, v in SCHEMA.items() if k not in ("subject", "body")}
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(ContentSpec(), schema)
    assert _fields(caught.value) == {"text_fields"}


def test_text_fields_must_hold_text() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(ContentSpec(text_fields=("subject", "impressions")), SCHEMA)
    assert _fields(caught.value) == {"impressions"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (ContentSpec(target="rpi"), "target"),
        (ContentSpec(min_impressions=-1), "min_impressions"),
        (ContentSpec(top_terms=0), "top_terms"),
        (ContentSpec(top_terms=201), "top_terms"),
        (ContentSpec(random_state=-1), "random_state"),
        (ContentSpec(text_fields=()), "text_fields"),
        (ContentSpec(text_fields=("subject", "subject")), "text_fields"),
    ],
)
def test_bad_settings_are_named(spec: ContentSpec, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(spec, SCHEMA)
    assert _fields(caught.value) == {field}


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(ContentSpec(target="x", top_terms=0), {"id": C})
    assert _fields(caught.value) == {
        "target",
        "top_terms",
        "channel",
        "impressions",
        "clicks",
        "conversions",
        "text_fields",
    }


def test_boundary_settings_are_accepted() -> None:
    validate_content_spec(ContentSpec(target="cvr", min_impressions=0, top_terms=1), SCHEMA)
    validate_content_spec(ContentSpec(top_terms=200, random_state=2**31 - 1), SCHEMA)


def test_a_seed_beyond_the_contracts_range_is_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(ContentSpec(random_state=2**31), SCHEMA)
    assert _fields(caught.value) == {"random_state"}


# --- on the wire --------------------------------------------------------------------------------


def test_spec_fields_are_named_as_the_request_spells_them() -> None:
    assert CONTENT_NAMES.wire("min_impressions") == "minImpressions"
    assert CONTENT_NAMES.wire("text_fields") == "textFields"
    assert CONTENT_NAMES.wire("id_field") == "fieldMap.id"
    assert CONTENT_NAMES.wire("revenue_field") == "fieldMap.revenue"
    # A detail naming one of the caller's columns keeps the column's name.
    assert CONTENT_NAMES.wire("creative_id") == "creative_id"


def test_a_refused_request_names_wire_fields_and_the_callers_columns() -> None:
    spec = ContentSpec(target="rpi", top_terms=0, clicks_field="klicks", text_fields=())
    with pytest.raises(ValidationFailed) as caught:
        validate_content_spec(spec, SCHEMA)
    assert _fields(CONTENT_NAMES.error(caught.value)) == {"target", "topTerms", "klicks", "textFields"}


def test_an_empty_request_maps_to_the_default_spec() -> None:
    body = c.ContentRequest.model_validate({"data": {"rows": [{"id": 1}]}})
    assert content_spec(body) == ContentSpec()


def test_the_request_maps_field_by_field_and_a_null_revenue_means_no_column() -> None:
    body = c.ContentRequest.model_validate(
        {
            "data": {"rows": [{"id": 1}]},
            "fieldMap": {"id": "creative", "channel": "medium", "clicks": "taps", "revenue": None},
            "textFields": ["title"],
            "target": "cvr",
            "minImpressions": 5,
            "topTerms": 7,
            "randomState": 3,
        }
    )
    assert content_spec(body) == ContentSpec(
        id_field="creative",
        channel_field="medium",
        clicks_field="taps",
        revenue_field="",
        text_fields=("title",),
        target="cvr",
        min_impressions=5,
        top_terms=7,
        random_state=3,
    )
