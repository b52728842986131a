"""POST /analyze/drift through the real app: a model trained by POST /train/gbm, then rows from the
same generator and shifted ones, the job polled on /status until its result; requests that do not
fit refused before any job, naming the request's fields (in its spelling) or the data's columns;
and JSON bodies only (an Arrow or Parquet body is a 415)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from support.app import app_client
from support.drift import with_reference
from support.http import error_of, fields_of, finished_job
from support.schemas import schema_errors

pytestmark = pytest.mark.timeout(120)


def customers(n: int, seed: int, shift: float = 0.0) -> dict[str, list[Any]]:
    """`income` N(50, 10), shifted by `shift` standard deviations; `region` 50/30/20."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 10, n) + shift * 10
    region = rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2])
    logit = 0.08 * (income - 50) + np.where(region == "north", 0.5, -0.3)
    return {
        "income": [round(float(v), 4) for v in income],
        "region": region.tolist(),
        "converted": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).tolist(),
    }


def rows_of(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client() as c:
        yield c


async def trained_state(client: httpx.AsyncClient) -> dict[str, Any]:
    training = customers(2000, seed=1)
    answer = await client.post(
        "/train/gbm",
        json={"data": {"columns": training}, "label": "converted", "params": {"numIterations": 20}},
    )
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()["modelState"]
    if "reference" not in state:
        # Until the trainer records one (issue 15, item 2), the test builds it from the training
        # rows as formats.md describes; once it does, the model's own reference is used.
        rows = rows_of(training)
        state = with_reference(state, rows, rows[:400])
    return state


async def drift_job(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await client.post("/analyze/drift", json=body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    job = await finished_job(client, answer.headers["location"])
    assert job["status"] == "completed" and job["type"] == "drift_analysis", job
    assert not schema_errors("Job", job), schema_errors("Job", job)[:3]
    result: dict[str, Any] = job["result"]
    return result


async def test_a_trained_model_measures_stable_rows_and_a_shifted_field(client: httpx.AsyncClient) -> None:
    state = await trained_state(client)
    same = await drift_job(
        client,
        {
            "modelState": state,
            "data": {"columns": customers(3000, seed=2)},
            "label": "converted",
            "tenantId": "t1",
        },
    )
    assert [(f["field"], f["status"]) for f in same["fields"]] == [("income", "stable"), ("region", "stable")]
    assert same["score"]["status"] == "stable" and same["recommendations"] == []
    assert same["performance"]["rows"] == 3000 and 0.6 < same["performance"]["auc"] < 0.9
    assert same["tenantId"] == "t1"

    shifted = await drift_job(
        client, {"modelState": state, "data": {"rows": rows_of(customers(3000, seed=2, shift=1.0))}}
    )
    fields = {f["field"]: f for f in shifted["fields"]}
    assert fields["income"]["status"] == "drifted" and fields["region"]["status"] == "stable"
    assert shifted["performance"] is None  # no label
    first = shifted["recommendations"][0]
    assert first["type"] == "model" and first["action"] == "retrain"
    assert first["title"] == f"Retrain: income drifted, PSI {fields['income']['psi']:.2f}"
    assert first["evidence"] == {
        "field": "income",
        "psi": fields["income"]["psi"],
        "ks": fields["income"]["ks"],
        "status": "drifted",
    }

    alone = await drift_job(
        client, {"reference": state["reference"], "data": {"columns": customers(500, seed=3)}}
    )
    assert alone["score"] is None and alone["performance"] is None
    assert any("no trees to score with" in note for note in alone["notes"])


async def test_requests_that_do_not_fit_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    state = await trained_state(client)
    data = {"columns": customers(200, seed=4)}

    async def refused(body: dict[str, Any]) -> list[str]:
        error = error_of(await client.post("/analyze/drift", json=body), 422, "VALIDATION_ERROR")
        return fields_of(error)

    assert await refused({"data": data}) == ["modelState"]
    assert await refused({"modelState": state, "reference": state["reference"], "data": data}) == [
        "modelState"
    ]
    text_income = {"columns": {**data["columns"], "income": ["high"] * 200}}
    assert await refused({"modelState": state, "data": text_income}) == ["income"]
    no_region = {"columns": {"income": data["columns"]["income"]}}
    assert await refused({"reference": state["reference"], "data": no_region}) == ["region"]
    assert await refused({"modelState": state, "data": data, "label": "churned"}) == ["label"]
    plain = {key: value for key, value in state.items() if key != "reference"}
    assert await refused({"modelState": plain, "data": data}) == ["modelState.content_hash"]
    tampered = {**state, "trees": state["trees"][:-1]}
    assert await refused({"modelState": tampered, "data": data}) == ["modelState.content_hash"]


def arrow_stream(columns: dict[str, list[Any]]) -> bytes:
    table = pa.table(columns)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


@pytest.mark.parametrize(
    "media_type", ["application/vnd.apache.arrow.stream", "application/vnd.apache.parquet", "text/csv"]
)
async def test_only_json_bodies_are_accepted(client: httpx.AsyncClient, media_type: str) -> None:
    answer = await client.post(
        "/analyze/drift",
        params={"request": '{"label": "converted"}'},
        content=arrow_stream(customers(50, seed=5)),
        headers={"content-type": media_type},
    )
    error = error_of(answer, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "application/json" in error["message"]


async def test_health_lists_the_capability(client: httpx.AsyncClient) -> None:
    assert "drift_analysis" in (await client.get("/health")).json()["capabilities"]
