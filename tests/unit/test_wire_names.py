"""Domain errors name spec fields; the presenters spell them as the request does."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.errors import InsufficientData, ValidationFailed, column_error, field_error
from entrypoints.presenters.wire import WireNames, json_ready, without_marks


@dataclass(frozen=True)
class _Caps:
    per_week: int = 10


@dataclass(frozen=True)
class _Spec:
    min_clusters: int = 2
    customer_id: str = "customerId"
    caps: _Caps = field(default_factory=_Caps)
    fields: tuple[str, ...] = ()


NAMES = WireNames(_Spec, {"customer_id": "fieldMap.customerId"})


def test_spec_fields_are_camel_cased_and_explicit_paths_win() -> None:
    assert NAMES.wire("min_clusters") == "minClusters"
    assert NAMES.wire("customer_id") == "fieldMap.customerId"
    assert NAMES.wire("caps.per_week") == "caps.perWeek"


def test_indices_column_names_and_unknown_paths_are_kept() -> None:
    assert NAMES.wire("fields.2") == "fields.2"
    assert NAMES.wire("fields.order_total") == "fields.order_total"
    assert NAMES.wire("data") == "data"
    assert NAMES.wire("not_a_field") == "not_a_field"


def test_an_error_keeps_its_class_and_names_wire_fields_in_details_and_message() -> None:
    error = NAMES.error(
        ValidationFailed(
            "`min_clusters` must not exceed `caps.per_week`; column order_total is fine",
            [field_error("caps.per_week", "too small"), {"message": "no field"}],
        )
    )
    assert isinstance(error, ValidationFailed)
    assert error.message == "minClusters must not exceed caps.perWeek; column order_total is fine"
    assert error.details == [{"field": "caps.perWeek", "message": "too small"}, {"message": "no field"}]


def test_rewriting_leaves_the_original_error_untouched() -> None:
    original = InsufficientData("`min_clusters` rows", [field_error("min_clusters", "x")])
    NAMES.error(original)
    assert original.message == "`min_clusters` rows"
    assert original.details == [{"field": "min_clusters", "message": "x"}]


def test_json_ready_turns_non_finite_numbers_into_null_and_keeps_the_rest() -> None:
    document = {"a": float("nan"), "b": [1.5, float("inf"), (2, "x")], "c": {"d": None, "e": True}}
    assert json_ready(document) == {"a": None, "b": [1.5, None, [2, "x"]], "c": {"d": None, "e": True}}


def test_a_column_of_the_callers_data_keeps_its_name_and_the_mark_never_reaches_the_wire() -> None:
    error = ValidationFailed(
        "bad data",
        [column_error("min_clusters", "mixed types; see `min_clusters`"), field_error("fields", "x")],
    )
    assert NAMES.error(error).details == [
        {"field": "min_clusters", "message": "mixed types; see minClusters"},
        {"field": "fields", "message": "x"},
    ]
    assert without_marks(error).details == [
        {"field": "min_clusters", "message": "mixed types; see `min_clusters`"},
        {"field": "fields", "message": "x"},
    ]


def test_a_detail_names_its_own_members_relative_to_it() -> None:
    error = ValidationFailed("bad", [field_error("caps", "`caps.per_week` must exceed `min_clusters`")])
    detail = NAMES.error(error).details[0]
    assert detail == {"field": "caps", "message": "perWeek must exceed minClusters"}


def test_backticked_words_that_are_not_spec_fields_stay_as_written() -> None:
    message = NAMES.message("send `rows` or `columns`; `min_clusters` is 2")
    assert message == "send `rows` or `columns`; minClusters is 2"
