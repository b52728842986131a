"""The edge takes JSON's types as the contract writes them: every integer, number and boolean
field of every request in openapi.yaml (found by walking the schemas, so a new field is covered
without a new test) refuses a string and a value of another JSON type with 422 VALIDATION_ERROR
naming that field; a mistake inside one form of `data` is named in that form's path; a 405 lists
every method of the path."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import BaseModel

from entrypoints import contract as c
from support.app import app_client
from support.http import error_of, fields_of

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
SCHEMAS = DOCUMENT["components"]["schemas"]
TYPED = ("integer", "number", "boolean")
# Values of another JSON type than the field's, the first a string that pydantic's lax mode would parse.
WRONG: dict[str, list[Any]] = {
    "integer": ["10", True, 2.5],
    "number": ["0.5", True],
    "boolean": ["true", 1, 0],
}
A_TABLE = {"table": "ds_customers", "filters": {"tenantId": "t1"}}


def _resolved(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def typed_fields(
    schema: dict[str, Any], path: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], str, dict[str, Any]]]:
    """(path, JSON type, schema) of each integer/number/boolean field below `schema`. A field that
    also takes a string (a data cell) accepts every scalar, so it has no wrong type to test."""
    schema = _resolved(schema)
    kinds = _types(schema)
    typed = kinds & set(TYPED)
    if typed and "string" not in kinds:
        yield path, sorted(typed, key=TYPED.index)[0], schema
    for name, child in schema.get("properties", {}).items():
        yield from typed_fields(child, (*path, name))
    if "items" in schema and "array" in kinds:
        yield from typed_fields(schema["items"], (*path, 0))
    for member in schema.get("oneOf", []):  # the forms of `data`: their fields share its path
        yield from typed_fields(member, path)


def operations() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method != "post":
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                found.append((path, operation["operationId"], body["schema"], body["example"]))
    return found


def _with(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    if path[0] == "data":  # the only typed field of `data` is in its table form
        body["data"] = dict(A_TABLE)
    target: Any = body
    for step, following in itertools.pairwise(path):
        if isinstance(step, int):
            while len(target) <= step:
                target.append({} if isinstance(following, str) else [])
        elif step not in target or not isinstance(target[step], dict | list):
            target[step] = [] if isinstance(following, int) else {}
        target = target[step]
    last = path[-1]
    if isinstance(last, int):
        target[:] = [value]
    else:
        target[last] = value
    return body


def _valid(kind: str, schema: dict[str, Any]) -> Any:
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if kind == "boolean":
        return False
    low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
    return int(low) + 1 if kind == "integer" else float(low) + 0.5 * (1 if low < 1 else low)


def wire(path: tuple[Any, ...]) -> str:
    return ".".join(str(step) for step in path)


MODELS = {
    "trainGbm": c.TrainGbmRequest,
    "analyzeSegments": c.SegmentsRequest,
    "analyzePolicies": c.PoliciesRequest,
    "analyzeContent": c.ContentRequest,
    "analyzeDrift": c.DriftAnalysisRequest,
}
CASES = [
    pytest.param(
        route, MODELS[operation_id], example, field, kind, schema, id=f"{operation_id}:{wire(field)}"
    )
    for route, operation_id, request, example in operations()
    for field, kind, schema in typed_fields(request)
]


def test_the_walk_finds_the_typed_fields_of_every_request() -> None:
    found = {case.id for case in CASES}
    assert {
        "trainGbm:params.numLeaves",
        "trainGbm:data.limit",
        "trainGbm:includeParityFixture",
        "trainGbm:validationFraction",
        "analyzeSegments:randomState",
        "analyzeSegments:eps",
        "analyzePolicies:bands.0",
        "analyzePolicies:caps.daily",
        "analyzePolicies:alpha",
        "analyzeContent:minImpressions",
    } <= found
    assert {case.id.split(":")[0] for case in CASES} == set(MODELS)
    assert len(CASES) >= 45


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client() as c:
        yield c


@pytest.mark.parametrize(("route", "model", "example", "path", "kind", "schema"), CASES)
async def test_every_typed_field_refuses_other_json_types(
    client: httpx.AsyncClient,
    route: str,
    model: type[BaseModel],
    example: dict[str, Any],
    path: tuple[Any, ...],
    kind: str,
    schema: dict[str, Any],
) -> None:
    # The same body with a value of the right type is valid: the refusals below are about the type.
    model.model_validate_json(json.dumps(_with(example, path, _valid(kind, schema))))
    for value in WRONG[kind]:
        answer = await client.post(route, json=_with(example, path, value))
        assert answer.status_code in (400, 422), answer.text
        error = error_of(answer, answer.status_code, "VALIDATION_ERROR")
        assert fields_of(error) == [wire(path)], (value, error)
        assert error["message"].startswith(f"{wire(path)}: "), error["message"]


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ({"table": "ds_customers", "limit": 0}, "data.limit", "greater than or equal to 1"),
        ({"table": "ds_customers", "limit": "10"}, "data.limit", "valid integer"),
        ({"table": "ds_customers", "columns": {"a": [1]}}, "data.columns", "valid array"),
        ({"rows": [{"a": {"b": 1}}]}, "data.rows.0.a", "valid string or a valid number or a valid boolean"),
        ({"columns": {"a": [1], "b": "x"}}, "data.columns.b", "valid array"),
        ({}, "data", "an object with `rows` or an object with `columns` or an object with `table`"),
        ([1, 2], "data", "an object"),
    ],
    ids=[
        "limit-0",
        "limit-string",
        "table-with-columns-object",
        "cell-object",
        "column-not-a-list",
        "no-form",
        "not-an-object",
    ],
)
async def test_a_mistake_in_one_form_of_data_is_named_in_that_form(
    client: httpx.AsyncClient, data: Any, field: str, says: str
) -> None:
    answer = await client.post("/train/gbm", json={"data": data, "label": "y"})
    error = error_of(answer, 422, "VALIDATION_ERROR")
    assert fields_of(error) == [field], error
    assert error["message"].startswith(f"{field}: ") and says in error["message"], error["message"]
    assert "InlineRows" not in answer.text and "TableData" not in answer.text


async def test_method_not_allowed_lists_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    for method in ("POST", "PUT", "PATCH"):
        answer = await client.request(method, "/status/abc")
        error_of(answer, 405, "METHOD_NOT_ALLOWED")
        assert answer.headers["allow"] == "GET, DELETE"
    answer = await client.get("/train/gbm")
    error_of(answer, 405, "METHOD_NOT_ALLOWED")
    assert answer.headers["allow"] == "POST"
