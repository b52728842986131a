"""JSON bodies, body bytes to frame, on the fast paths (entrypoints/http/json_body.py, then the inline
source): every check of the contract is kept, and what the fast paths do not take still gets the
contract's own answer."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from adapters.inline.dataset_source import InlineDatasetSource
from application.errors import PayloadTooLarge
from domain.errors import ValidationFailed
from entrypoints import contract as c
from entrypoints.http.json_body import decode_json_request
from entrypoints.presenters.data import data_spec

pytestmark = pytest.mark.timeout(60)


def encode(data: dict[str, Any], **fields: Any) -> bytes:
    return json.dumps({"data": data, "label": "y", **fields}).encode()


async def frame_of(body: bytes, max_rows: int = 1000) -> pl.DataFrame:
    parsed = decode_json_request(body, c.TrainGbmRequest)
    dataset = await InlineDatasetSource().load(data_spec(parsed.data), max_rows=max_rows)
    frame: pl.DataFrame = dataset.frame
    return frame


def fast(body: bytes) -> bool:
    """Whether a body took a fast path: its data reaches the source as columns (rows too), and its
    integers are still integers (the contract's scalar type would have made them floats)."""
    data = decode_json_request(body, c.TrainGbmRequest).data
    return isinstance(data, c.InlineColumns) and any(
        type(value) is int for values in data.columns.values() for value in values
    )


def as_rows(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


FORMS = ["columns", "rows"]


def body_of(form: str, columns: dict[str, list[Any]], **fields: Any) -> bytes:
    data = {"columns": columns} if form == "columns" else {"rows": as_rows(columns)}
    return encode(data, **fields)


@pytest.mark.parametrize("form", FORMS)
async def test_each_column_gets_one_strict_type_in_order(form: str) -> None:
    columns = {
        "age": [31, 45, None],
        "income": [1.5, None, 3.25],
        "region": ["north", "south", None],
        "member": [True, False, None],
        "y": [0, 1, 0],
    }
    body = body_of(form, columns)
    assert fast(body)
    frame = await frame_of(body)
    assert dict(frame.schema) == {
        "age": pl.Int64, "income": pl.Float64, "region": pl.String, "member": pl.Boolean, "y": pl.Int64
    }  # fmt: skip
    assert frame.rows() == list(zip(*columns.values(), strict=True))


@pytest.mark.parametrize("form", FORMS)
async def test_integers_and_floats_in_one_column_are_one_float_column(form: str) -> None:
    frame = await frame_of(body_of(form, {"x": [1, 2.5, None, 4], "y": [0, 1, 0, 1]}))
    assert frame.schema["x"] == pl.Float64
    assert frame["x"].to_list() == [1.0, 2.5, None, 4.0]


@pytest.mark.parametrize("form", FORMS)
async def test_an_all_null_column_is_a_float_column(form: str) -> None:
    frame = await frame_of(body_of(form, {"e": [None, None], "y": [0, 1]}))
    assert frame.schema["e"] == pl.Float64


@pytest.mark.parametrize("form", FORMS)
async def test_numbers_and_text_in_one_column_are_refused_naming_it(form: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await frame_of(body_of(form, {"ok": [1, 2, 3], "age": [31, "forty", 50], "y": [0, 1, 0]}))
    assert [d["field"] for d in caught.value.details] == ["age"]
    assert "int" in caught.value.details[0]["message"] and "str" in caught.value.details[0]["message"]


@pytest.mark.parametrize("cell", [[1, 2], {"a": 1}])
async def test_nested_cells_of_a_column_are_refused_naming_it(cell: Any) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await frame_of(encode({"columns": {"z": [cell, cell], "y": [0, 1]}}))
    assert [d["field"] for d in caught.value.details] == ["z"]


@pytest.mark.parametrize("cell", [[1, 2], {"a": 1}])
def test_nested_cells_of_a_row_are_refused_by_the_contract_naming_the_cell(cell: Any) -> None:
    body = encode({"rows": [{"z": 1, "y": 0}, {"z": cell, "y": 1}]})
    with pytest.raises(ValidationError) as caught:
        decode_json_request(body, c.TrainGbmRequest)
    # The body is not any form of `data`; as the rows it claims to be, cell `z` of row 1 is wrong.
    assert ("data", "InlineRows", "rows", 1, "z") in {error["loc"][:5] for error in caught.value.errors()}


async def test_columns_of_unequal_length_are_refused_naming_the_odd_one() -> None:
    with pytest.raises(ValidationFailed) as caught:
        await frame_of(encode({"columns": {"a": [1, 2, 3], "b": [1, 2], "y": [0, 1, 0]}}))
    assert [d["field"] for d in caught.value.details] == ["b"]


@pytest.mark.parametrize("form", FORMS)
async def test_max_rows_applies(form: str) -> None:
    body = body_of(form, {"x": list(range(11)), "y": [0, 1] * 5 + [0]})
    assert (await frame_of(body, max_rows=11)).height == 11
    with pytest.raises(PayloadTooLarge, match="11 rows"):
        await frame_of(body, max_rows=10)


async def test_rows_are_columns_in_first_seen_order_and_a_missing_key_is_null() -> None:
    rows = [{"age": 31, "region": "north", "y": 0}, {"y": 1, "region": "south"}, {"age": 45, "y": 0}]
    body = encode({"rows": rows})
    assert fast(body)
    frame = await frame_of(body)
    assert frame.columns == ["age", "region", "y"]
    assert frame["age"].to_list() == [31, None, 45]
    assert frame["region"].to_list() == ["north", "south", None]


@pytest.mark.parametrize(
    "rows",
    [
        # A key the first row lacks: not the fast path's shape, the same frame all the same.
        [{"a": 1, "y": 0}, {"b": "x", "y": 1}],
        # Keys msgspec cannot rename to (a quote, a backslash, a control character).
        [{'q"uote': 1, "back\\slash": 2, "tab\t": 3, "y": 0}],
    ],
)
async def test_rows_the_fast_path_does_not_take_load_as_they_always_did(rows: list[dict[str, Any]]) -> None:
    frame = await frame_of(encode({"rows": rows}))
    names = list(dict.fromkeys(key for row in rows for key in row))
    assert frame.columns == names
    assert frame.rows() == [tuple(row.get(name) for name in names) for row in rows]


async def test_a_brace_inside_the_first_rows_text_is_not_its_end() -> None:
    rows = [{"t": "a } b {", "u": "}}", "y": 0}, {"t": "c", "u": "d", "y": 1}]
    body = encode({"rows": rows})
    assert fast(body)
    assert (await frame_of(body)).rows() == [("a } b {", "}}", 0), ("c", "d", 1)]


async def test_fields_before_and_after_the_data_are_read_on_both_fast_paths() -> None:
    for data in ({"rows": [{"x": 1.5, "y": 0}]}, {"columns": {"x": [1.5], "y": [0]}}):
        text = '{"label": "y", "data": DATA, "validationFraction": 0, "params": {"numLeaves": 7}}'
        text = text.replace("DATA", json.dumps(data))
        parsed = decode_json_request(text.encode(), c.TrainGbmRequest)
        assert (parsed.label, parsed.validationFraction, parsed.params.numLeaves) == ("y", 0, 7)
        with pytest.raises(ValidationError) as caught:
            decode_json_request(text.replace("7", "1").encode(), c.TrainGbmRequest)
        assert [e["loc"] for e in caught.value.errors()] == [("params", "numLeaves")]


def test_json_the_decoder_refuses_goes_to_the_contracts_parser() -> None:
    # NaN is not JSON: msgspec refuses it, and so does the contract's parser on the generic path
    # (the request models refuse non-finite numbers; errors.py answers 400).
    with pytest.raises(ValidationError) as caught:
        decode_json_request(b'{"data": {"columns": {"x": [NaN, 1.0]}}, "label": "x"}', c.TrainGbmRequest)
    assert "finite_number" in {e["type"] for e in caught.value.errors()}
    with pytest.raises(ValidationError) as caught:
        decode_json_request(b'{"data": {"rows": [', c.TrainGbmRequest)
    assert caught.value.errors()[0]["type"] == "json_invalid"


def test_a_table_goes_to_the_contract_model() -> None:
    parsed = decode_json_request(encode({"table": "ds_customers", "limit": 5}), c.TrainGbmRequest)
    assert isinstance(parsed.data, c.TableData) and parsed.data.limit == 5


# Three bodies of the same data: columns, rows on the fast path, and rows the contract model reads
# (a key the first row lacks sends them there). The frame and its refusals must not depend on which.
def _three_forms(columns: dict[str, list[Any]]) -> dict[str, bytes]:
    rows = as_rows(columns)
    slow = [{key: value for key, value in rows[0].items() if key != "y"}, *rows[1:]]
    return {
        "columns": encode({"columns": columns}),
        "rows": encode({"rows": rows}),
        "rows, generic path": encode({"rows": slow}),
    }


async def test_a_mixed_column_is_refused_alike_in_every_form() -> None:
    # It read `(int, str)` as columns and `(float, str)` as rows the contract model validated.
    details = {}
    for form, body in _three_forms({"age": [31, "forty", 50], "y": [0, 1, 0]}).items():
        with pytest.raises(ValidationFailed) as caught:
            await frame_of(body)
        details[form] = (caught.value.message, caught.value.details)
    assert len(set(map(repr, details.values()))) == 1, details
    message, [detail] = details["columns"]
    assert (detail["field"], detail["message"]) == ("age", "mixed types: int, str")
    assert "(int, str)" in message


async def test_integers_are_integers_in_every_form() -> None:
    forms = _three_forms({"age": [31, 45, 52], "income": [1.5, 2.0, 3.25], "y": [0, 1, 0]})
    assert not fast(forms["rows, generic path"])  # the contract model did read it
    for form, body in forms.items():
        frame = await frame_of(body)
        assert frame.schema["age"] == pl.Int64, form
        assert frame.schema["income"] == pl.Float64, form
        assert frame["age"].to_list() == [31, 45, 52], form
