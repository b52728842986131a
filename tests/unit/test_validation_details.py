"""How a contract model's errors become the details of a 422: at a union, only the form the input
meant is reported, in the request's own path, and a key that happens to spell a form's tag
(a column named `TableData` or `str`) stays a key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from entrypoints import contract as c
from entrypoints.http.validation import validation_details


def details(model: type[BaseModel], body: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as error:
        model.model_validate_json(json.dumps(body))
    return [(d["field"], d["type"]) for d in validation_details(error.value)]


def test_the_table_form_is_chosen_by_its_key() -> None:
    body = {"data": {"table": "ds_x", "limit": 0}, "label": "y"}
    assert details(c.TrainGbmRequest, body) == [("data.limit", "greater_than_equal")]


def test_the_form_with_fewest_unknown_keys_wins_and_other_fields_keep_their_order() -> None:
    body = {"data": {"table": "ds_x", "columns": {"a": [1]}}, "label": 5, "features": [1]}
    assert details(c.TrainGbmRequest, body) == [
        ("data.columns", "list_type"),
        ("label", "string_type"),
        ("features.0", "string_type"),
    ]


def test_an_unknown_key_next_to_a_form_is_named_with_it() -> None:
    body = {"data": {"table": "ds_x", "limit": 0, "tenant": "t1"}, "label": "y"}
    assert details(c.TrainGbmRequest, body) == [
        ("data.limit", "greater_than_equal"),
        ("data.tenant", "extra_forbidden"),
    ]


def test_keys_spelled_like_tags_stay_keys() -> None:
    body = {
        "data": {"table": "ds_x", "filters": {"TableData": {"x": 1}, "str": [{}], "InlineRows": "ok"}},
        "label": "y",
    }
    assert details(c.TrainGbmRequest, body) == [
        ("data.filters.TableData", "union_no_match"),
        ("data.filters.str.0", "union_no_match"),
    ]
    rows = {"data": {"rows": [{"InlineColumns": [1], "float": 2}]}, "label": "y"}
    assert details(c.TrainGbmRequest, rows) == [("data.rows.0.InlineColumns", "union_no_match")]


def test_no_form_at_all_is_one_error_on_the_field() -> None:
    assert details(c.SegmentsRequest, {"data": {}}) == [("data", "union_no_match")]
    assert details(c.SegmentsRequest, {"data": "ds_x"}) == [("data", "union_no_match")]


def test_errors_outside_unions_are_unchanged() -> None:
    body = {"data": {"rows": []}, "label": "y", "params": {"numLeaves": "31", "seed": True}}
    assert details(c.TrainGbmRequest, body) == [("params.numLeaves", "int_type"), ("params.seed", "int_type")]
