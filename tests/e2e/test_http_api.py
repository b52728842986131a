"""The HTTP API in process: the real app factory and lifespan (container, job store, compute runner),
driven through httpx's ASGI transport. Inline compute unless a test says otherwise; a test that
needs a fake adapter overrides its provider in the container."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import numpy as np
import pytest
import structlog
from dependency_injector import providers
from sklearn.datasets import make_blobs
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

from adapters.compute.inline_runner import InlineRunner
from adapters.memory.job_store import InMemoryJobStore
from domain.gbm.scorer import load_model
from entrypoints.container import Container
from support.app import app_client
from support.http import error_of as _error
from support.http import fields_of as _fields
from support.http import finished_job as _poll

pytestmark = pytest.mark.timeout(120)

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def make_client() -> ClientFactory:
    return app_client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client() as c:
        yield c


# ------------------------------------------------------------------------- data


def dataset(n: int = 1500, seed: int = 3) -> dict[str, list[Any]]:
    """`signal` drives the label; `noise` and `colour` do not; `id` is never a feature."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-3 * signal))).astype(int)
    return {
        "id": list(range(n)),
        "signal": [round(float(v), 6) for v in signal],
        "noise": [round(float(v), 6) for v in rng.normal(size=n)],
        "colour": rng.choice(["red", "green", "blue"], size=n).tolist(),
        "converted": y.tolist(),
    }


def as_rows(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def small(n: int = 40) -> dict[str, list[Any]]:
    return {"x": [float(i % 7) for i in range(n)], "y": [i % 2 for i in range(n)]}


# ------------------------------------------------------------------------- health, request id, auth


async def test_health_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert sorted(body["capabilities"]) == [
        "content_analysis",
        "drift_analysis",
        "gbm_training",
        "policy_analysis",
        "segmentation",
    ]
    assert isinstance(body["version"], str) and body["version"]
    assert (body["jobStore"], body["dataSource"]) == ("memory", "inline")
    assert body["dependencies"] == [{"name": "jobStore", "status": "ok", "reason": None}]
    assert {"workers", "threadsPerTask", "busy", "queued", "queueLimit"} <= set(body["compute"])


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    given = await client.get("/health", headers={"X-Request-Id": "req-42"})
    assert given.headers["x-request-id"] == "req-42"
    first = (await client.get("/health")).headers["x-request-id"]
    second = (await client.get("/health")).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second
    error = await client.get("/status/nope", headers={"X-Request-Id": "req-43"})
    assert _error(error, 404, "NOT_FOUND")["requestId"] == "req-43"
    generated = await client.get("/status/nope")
    assert _error(generated, 404, "NOT_FOUND")["requestId"] == generated.headers["x-request-id"]


async def test_api_key_is_required_when_set(make_client: ClientFactory) -> None:
    async with make_client(api_key="s3cret") as client:
        body = {"data": {"columns": small()}, "label": "y", "params": {"numIterations": 3}}
        missing = await client.post("/train/gbm", json=body)
        _error(missing, 401, "UNAUTHORIZED")
        wrong = await client.post("/train/gbm", json=body, headers={"X-Api-Key": "s3cre"})
        _error(wrong, 401, "UNAUTHORIZED")
        _error(await client.get("/status/abc"), 401, "UNAUTHORIZED")
        _error(await client.delete("/status/abc"), 401, "UNAUTHORIZED")
        _error(await client.post("/analyze/segments", json={"data": {"rows": []}}), 401, "UNAUTHORIZED")
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        ok = await client.post("/train/gbm", json=body, headers={"X-Api-Key": "s3cret"})
        assert ok.status_code == 200, ok.text
        _error(await client.get("/status/abc", headers={"X-Api-Key": "s3cret"}), 404, "NOT_FOUND")


async def test_no_api_key_means_open(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/train/gbm", json={"data": {"columns": small()}, "label": "y", "params": {"numIterations": 2}}
    )
    assert response.status_code == 200, response.text


# ------------------------------------------------------------------------- transport-level errors


async def test_body_over_the_limit_is_413_with_and_without_content_length(make_client: ClientFactory) -> None:
    async with make_client(max_body_mb=0.001) as client:  # about 1 KB
        big = json.dumps({"data": {"columns": {"x": list(range(2000))}}, "label": "x"}).encode()
        assert len(big) > 1100
        declared = await client.post("/train/gbm", content=big, headers={"Content-Type": "application/json"})
        error = _error(declared, 413, "PAYLOAD_TOO_LARGE")
        assert "0.000999451 MB" in error["message"] and "ML_WORKER_MAX_BODY_MB" in error["message"]

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 256):
                yield big[start : start + 256]

        chunked = await client.post(
            "/train/gbm", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in chunked.request.headers
        assert "0.000999451 MB" in _error(chunked, 413, "PAYLOAD_TOO_LARGE")["message"]
        # A body under the limit is not refused.
        ok = await client.post(
            "/train/gbm", json={"data": {"columns": small(20)}, "label": "y", "params": {"numIterations": 2}}
        )
        assert ok.status_code == 200, ok.text


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/train/gbm", content=b'{"label": "y"}', headers={"Content-Type": "text/plain"}
    )
    _error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/train/gbm", content=b'{"data": {"rows": [', headers={"Content-Type": "application/json"}
    )
    error = _error(response, 400, "VALIDATION_ERROR")
    assert _fields(error) == ["body"]


# ------------------------------------------------------------------------- 422s that name the field


async def _train(client: httpx.AsyncClient, body: dict[str, Any] | bytes) -> httpx.Response:
    if isinstance(body, bytes):
        return await client.post("/train/gbm", content=body, headers={"Content-Type": "application/json"})
    return await client.post("/train/gbm", json=body)


async def test_a_column_named_like_a_spec_field_is_named_as_the_caller_wrote_it(
    client: httpx.AsyncClient,
) -> None:
    """Details about the caller's columns keep their names; only spec fields are spelled as the
    request spells them."""
    text = {"max_categories": ["a", "b"] * 20, "x": list(range(40)), "y": [0, 1] * 20}
    answer = await _train(client, {"data": {"columns": text}, "label": "y", "categoricalFeatures": []})
    error = _error(answer, 422, "VALIDATION_ERROR")
    assert error["details"] == [
        {
            "field": "max_categories",
            "message": "holds text but is not listed in categoricalFeatures; send numbers or list it",
        }
    ]
    mixed = {"id_field": [1, "a"] * 20, "y": [0, 1] * 20}
    answer = await _train(client, {"data": {"columns": mixed}, "label": "y"})
    error = _error(answer, 422, "VALIDATION_ERROR")
    assert _fields(error) == ["id_field"]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"data": {"rows": []}, "label": "y"}, "INSUFFICIENT_DATA", "data"),
        ({"data": {"columns": {}}, "label": "y"}, "INSUFFICIENT_DATA", "data"),
        ({"data": {"columns": {"x": [1, 2, 3]}}, "label": "y"}, "VALIDATION_ERROR", "label"),
        (
            {"data": {"columns": {"x": list(range(20)), "y": [0, 1, 2, 3] * 5}}, "label": "y"},
            "VALIDATION_ERROR",
            "label",
        ),
        (
            {"data": {"columns": {"x": list(range(20)), "y": ["yes", "no"] * 10}}, "label": "y"},
            "VALIDATION_ERROR",
            "label",
        ),
        (
            {"data": {"columns": {"x": list(range(20)), "y": [1] * 20}}, "label": "y"},
            "INSUFFICIENT_DATA",
            "label",
        ),
        (
            {"data": {"columns": {"x": list(range(9)), "y": [0, 1, 0, 1, 0, 1, 0, 1, 0]}}, "label": "y"},
            "INSUFFICIENT_DATA",
            "data",
        ),
        (
            {"data": {"columns": small()}, "label": "y", "features": ["x", "ghost"]},
            "VALIDATION_ERROR",
            "features",
        ),
        (
            {
                "data": {"columns": {**small(), "s": ["a", "b"] * 20}},
                "label": "y",
                "features": ["x", "s"],
                "categoricalFeatures": [],
            },
            "VALIDATION_ERROR",
            "s",
        ),
        ({"data": {"columns": {**small(), "m": [1, "two"] * 20}}, "label": "y"}, "VALIDATION_ERROR", "m"),
        ({"data": {"columns": {"x": [1, 2, 3], "y": [0, 1]}}, "label": "y"}, "VALIDATION_ERROR", "y"),
        (
            {"data": {"columns": small()}, "label": "y", "params": {"foo": 1}},
            "VALIDATION_ERROR",
            "params.foo",
        ),
        ({"data": {"columns": small()}, "label": "y", "lable": "y"}, "VALIDATION_ERROR", "lable"),
        (
            {"data": {"columns": small()}, "label": "y", "params": {"numLeaves": 1}},
            "VALIDATION_ERROR",
            "params.numLeaves",
        ),
        (
            {"data": {"columns": small()}, "label": "y", "validationFraction": 0.9},
            "VALIDATION_ERROR",
            "validationFraction",
        ),
        (
            {"data": {"columns": small()}, "label": "y", "validationFraction": 0, "earlyStoppingRounds": 5},
            "VALIDATION_ERROR",
            "earlyStoppingRounds",
        ),
        ({"data": {"table": "ds_customers"}, "label": "y"}, "VALIDATION_ERROR", "data.table"),
    ],
    ids=[
        "empty-rows",
        "empty-columns",
        "missing-label",
        "non-binary-label",
        "text-label",
        "single-class",
        "too-few-rows",
        "unknown-feature",
        "text-feature-not-categorical",
        "mixed-number-and-text",
        "mismatched-lengths",
        "unknown-param",
        "unknown-top-level-key",
        "param-out-of-range",
        "validation-fraction-out-of-range",
        "early-stopping-without-validation",
        "table-without-database",
    ],
)
async def test_bad_training_requests_are_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], code: str, field: str
) -> None:
    error = _error(await _train(client, body), 422, code)
    assert any(field == f or (f or "").endswith("." + field) for f in _fields(error)), error


@pytest.mark.parametrize("bad", ["NaN", "1e400", "-1e400"])
@pytest.mark.parametrize("form", ["columns", "rows"])
async def test_nan_or_infinite_labels_are_400_naming_the_cell(
    client: httpx.AsyncClient, bad: str, form: str
) -> None:
    # JSON has no NaN or infinity, and an overflowing number can only be read as one: the body is
    # refused as not JSON, naming the cell, never trained on (tests/e2e/test_hostile_numbers.py).
    labels = ["0", "1"] * 10 + [bad]
    if form == "columns":
        data = f'{{"columns": {{"x": {list(range(21))}, "y": [{", ".join(labels)}]}}}}'
    else:
        data = '{"rows": [' + ", ".join(f'{{"x": {i}, "y": {v}}}' for i, v in enumerate(labels)) + "]}"
    raw = f'{{"data": {data}, "label": "y"}}'.encode()
    error = _error(await _train(client, raw), 400, "VALIDATION_ERROR")
    assert _fields(error) == ["data.columns.y.20" if form == "columns" else "data.rows.20.y"]


async def test_too_many_rows_is_413(make_client: ClientFactory) -> None:
    async with make_client(max_rows=30) as client:
        for data in ({"columns": small(31)}, {"rows": as_rows(small(31))}):
            response = await client.post("/train/gbm", json={"data": data, "label": "y"})
            _error(response, 413, "PAYLOAD_TOO_LARGE")
        ok = await client.post(
            "/train/gbm", json={"data": {"columns": small(30)}, "label": "y", "params": {"numIterations": 2}}
        )
        assert ok.status_code == 200, ok.text


# ------------------------------------------------------------------------- /train/gbm end to end


def _validation_rows(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    _, valid = train_test_split(np.arange(len(y)), test_size=fraction, stratify=y, random_state=seed)
    return np.sort(valid)


def _check_trained(body: dict[str, Any], columns: dict[str, list[Any]], fraction: float, seed: int) -> None:
    metrics = body["metrics"]
    y = np.asarray(columns["converted"])
    n = len(y)
    assert metrics["evaluatedOn"] == "validation"
    assert metrics["validationSamples"] == math.ceil(n * fraction)
    assert metrics["trainingSamples"] + metrics["validationSamples"] == n
    assert metrics["auc"] > 0.8
    assert metrics["positiveRate"] == pytest.approx(y.mean())
    assert len(body["modelState"]["trees"]) == metrics["numTrees"]
    assert body["threads"] >= 1
    importance = body["featureImportance"]
    assert {f["field"] for f in importance} == {"signal", "noise", "colour"}
    assert importance[0]["field"] == "signal"
    assert sum(f["importance"] for f in importance) == pytest.approx(1.0, abs=1e-12)
    assert body["library"]["name"] == "lightgbm"

    # Score the returned model with the reference scorer on the validation rows: same metrics.
    model = load_model(body["modelState"])
    rows = as_rows(columns)
    valid = _validation_rows(y, fraction, seed)
    p = np.array([model.score(rows[i]).score for i in valid])
    assert roc_auc_score(y[valid], p) == pytest.approx(metrics["auc"], abs=1e-9)
    assert log_loss(y[valid], p) == pytest.approx(metrics["logloss"], abs=1e-9)
    assert float(((p >= 0.5) == y[valid]).mean()) == pytest.approx(metrics["accuracy"], abs=1e-12)


async def test_train_gbm_end_to_end_columns_and_rows(client: httpx.AsyncClient) -> None:
    columns = dataset()
    request = {"label": "converted", "params": {"numIterations": 40, "seed": 9}, "validationFraction": 0.25}
    by_columns = await client.post("/train/gbm", json={**request, "data": {"columns": columns}})
    assert by_columns.status_code == 200, by_columns.text
    _check_trained(by_columns.json(), columns, 0.25, 9)
    by_rows = await client.post("/train/gbm", json={**request, "data": {"rows": as_rows(columns)}})
    assert by_rows.status_code == 200, by_rows.text
    _check_trained(by_rows.json(), columns, 0.25, 9)
    # The same data in either form is the same model.
    assert by_rows.json()["modelState"]["content_hash"] == by_columns.json()["modelState"]["content_hash"]
    assert by_rows.json()["metrics"] == by_columns.json()["metrics"]


async def test_train_gbm_with_early_stopping(client: httpx.AsyncClient) -> None:
    columns = dataset(n=800, seed=5)
    response = await client.post(
        "/train/gbm",
        json={
            "data": {"columns": columns},
            "label": "converted",
            "earlyStoppingRounds": 5,
            "params": {"numIterations": 500, "learningRate": 0.5},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metrics"]["numTrees"] < 500
    assert body["metrics"]["bestIteration"] == body["metrics"]["numTrees"] == len(body["modelState"]["trees"])
    _check_trained(body, columns, 0.2, 42)


# ------------------------------------------------------------------------- metrics


async def test_metrics_use_route_templates_and_count_training_rows(client: httpx.AsyncClient) -> None:
    await client.get("/status/some-raw-job-id")
    await client.get("/status/another-raw-job-id")
    trained = await client.post(
        "/train/gbm", json={"data": {"columns": small(50)}, "label": "y", "params": {"numIterations": 2}}
    )
    assert trained.status_code == 200
    text = (await client.get("/metrics")).text
    assert 'ml_worker_http_requests_total{method="GET",route="/status/{job_id}",status="404"} 2.0' in text
    assert 'ml_worker_http_requests_total{method="POST",route="/train/gbm",status="200"} 1.0' in text
    assert "some-raw-job-id" not in text
    assert "ml_worker_training_rows_count 1.0" in text
    assert "ml_worker_training_rows_sum 50.0" in text
    assert 'ml_worker_http_request_duration_seconds_count{method="GET",route="/status/{job_id}"} 2.0' in text
    assert 'ml_worker_training_duration_seconds_count{outcome="ok"} 1.0' in text


# ------------------------------------------------------------------------- jobs


def blobs(n: int = 1200) -> dict[str, list[float]]:
    x, _ = make_blobs(n_samples=n, centers=4, n_features=3, cluster_std=0.7, random_state=11)
    return {f"f{i}": [float(v) for v in x[:, i]] for i in range(3)}


async def _segments_job(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/analyze/segments",
        json={
            "data": {"columns": blobs()},
            "minClusters": 2,
            "maxClusters": 6,
            "schemaId": "schema-1",
        },
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued" and accepted["jobId"]
    assert response.headers["location"] == f"/status/{accepted['jobId']}"
    job = await _poll(client, response.headers["location"])
    assert job["status"] == "completed", job
    assert job["jobId"] == accepted["jobId"] and job["type"] == "segmentation"
    assert job["progress"] == 1.0 and job["error"] is None
    assert job["createdAt"] <= job["startedAt"] <= job["finishedAt"]
    assert job["result"]["k"] == 4
    assert job["result"]["schemaId"] == "schema-1"
    assert sum(s["size"] for s in job["result"]["segments"]) == 1200


async def test_segments_job_end_to_end(client: httpx.AsyncClient) -> None:
    await _segments_job(client)


async def test_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    error = _error(await client.get("/status/0123456789abcdef"), 404, "NOT_FOUND")
    assert "0123456789abcdef" in error["message"]
    _error(await client.delete("/status/0123456789abcdef"), 404, "NOT_FOUND")


async def test_bad_segments_request_is_422_before_any_job(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/analyze/segments",
        json={
            "data": {"columns": blobs(100)},
            "fields": ["f0", "ghost"],
        },
    )
    error = _error(response, 422, "VALIDATION_ERROR")
    assert any("ghost" in json.dumps(d) for d in error["details"])
    response = await client.post(
        "/analyze/segments",
        json={
            "data": {"columns": blobs(100)},
            "minClusters": 5,
            "maxClusters": 3,
        },
    )
    _error(response, 422, "VALIDATION_ERROR")


def interactions(customers: int = 200, seed: int = 2) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {"user": [], "medium": [], "ts": [], "event": []}
    start = 1_704_067_200  # a Monday
    for customer in range(customers):
        for week in range(6):
            for _ in range(int(rng.integers(1, 8))):
                t = start + week * 7 * 86_400 + int(rng.integers(0, 6 * 86_400))
                events = ["impression"] + (["click", "conversion"] if rng.random() < 0.1 else [])
                for offset, event in enumerate(events):
                    rows["user"].append(f"c{customer}")
                    rows["medium"].append(str(rng.choice(["email", "sms"])))
                    rows["ts"].append(t + offset * 60)
                    rows["event"].append(event)
    return rows


POLICY_FIELDS = {"customerId": "user", "channel": "medium", "timestamp": "ts", "interactionType": "event"}


async def test_policies_job_end_to_end(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/analyze/policies",
        json={"data": {"columns": interactions()}, "fieldMap": POLICY_FIELDS, "tenantId": "t-1"},
    )
    assert response.status_code == 202, response.text
    job = await _poll(client, response.headers["location"])
    assert job["status"] == "completed", job
    result = job["result"]
    assert result["tenantId"] == "t-1" and "schemaId" not in result
    assert result["summary"]["rows"] == len(interactions()["user"])
    assert {c["channel"] for c in result["channels"]} == {"email", "sms"}
    assert [b["band"] for b in result["frequencyBands"]] == ["1", "2-3", "4-5", "6-7", "8-10", "11+"]
    assert result["model"] is None or result["model"]["features"][:2] == ["frequency", "frequencySquared"]


async def test_bad_policies_request_is_422_naming_the_request_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/analyze/policies",
        json={
            "data": {"columns": interactions(5)},
            "fieldMap": {**POLICY_FIELDS, "channel": "channel"},
            "interactionValues": {"click": ["Impression"]},
        },
    )
    error = _error(response, 422, "VALIDATION_ERROR")
    assert _fields(error) == ["fieldMap.channel", "interactionValues.click"]
    assert "listed in interactionValues.impression" in error["details"][1]["message"]


async def test_delete_is_idempotent(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/analyze/segments",
        json={
            "data": {"columns": blobs(6000)},
            "minClusters": 2,
            "maxClusters": 8,
        },
    )
    assert response.status_code == 202
    location = response.headers["location"]
    first = await client.delete(location)
    second = await client.delete(location)
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] in ("cancelled", "completed")
    assert second.json() == first.json()
    await asyncio.sleep(0.5)
    after = (await client.get(location)).json()
    assert after["status"] == first.json()["status"]
    assert after["finishedAt"] == first.json()["finishedAt"]
    # A finished job: cancelling changes nothing either.
    assert (await client.delete(location)).json() == after


async def test_the_process_runner_serves_training_and_jobs(make_client: ClientFactory) -> None:
    async with make_client(compute="process", workers=1, threads_per_task=1) as client:
        health = (await client.get("/health")).json()
        assert health["compute"]["workers"] == 1 and health["compute"]["threadsPerTask"] == 1
        columns = dataset(n=600, seed=8)
        with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            response = await client.post(
                "/train/gbm",
                json={
                    "data": {"columns": columns},
                    "label": "converted",
                    "params": {"numIterations": 20},
                },
            )
        assert response.status_code == 200, response.text
        _check_trained(response.json(), columns, 0.2, 42)
        # The threads the worker chose, in the answer and on the request's log line.
        assert response.json()["threads"] == 1
        [line] = [entry for entry in logs if entry["event"] == "request" and entry["path"] == "/train/gbm"]
        assert line["threads"] == 1
        single = await client.post(
            "/train/gbm", json={"data": {"columns": {"x": list(range(20)), "y": [0] * 20}}, "label": "y"}
        )
        _error(single, 422, "INSUFFICIENT_DATA")
        await _segments_job(client)


# ------------------------------------------------------------------------- 503, 500, 504


async def test_a_training_past_the_line_for_a_slot_answers_503_busy_and_a_job_is_queued() -> None:
    runner = InlineRunner(queue_limit=1)
    container = Container()
    container.runner.override(providers.Object(runner))
    async with app_client(container) as client:
        place = runner.reserve()
        try:
            body = {"data": {"columns": small()}, "label": "y", "params": {"numIterations": 2}}
            response = await client.post("/train/gbm", json=body)
            _error(response, 503, "BUSY")
            assert int(response.headers["retry-after"]) > 0
            # A job waits in the queue instead: it runs once a slot is free.
            segments = await client.post("/analyze/segments", json={"data": {"columns": blobs(100)}})
            assert segments.status_code == 202
            await asyncio.sleep(0.5)
            assert (await client.get(segments.headers["location"])).json()["status"] == "queued"
        finally:
            place.release()
        job = await _poll(client, segments.headers["location"])
        assert job["status"] == "completed"
        assert (await client.post("/train/gbm", json=body)).status_code == 200


class _UnreachableStore(InMemoryJobStore):
    async def check(self) -> str | None:
        return "connection refused"


class _ExplodingTraining:
    job_type = "gbm_training"  # it stands in for the training use case, a job handler too

    async def execute(self, command: Any) -> Any:
        raise RuntimeError("secret internals")

    async def prepare(self, job_input: Any) -> Any:
        raise RuntimeError("secret internals")


async def test_health_is_503_degraded_naming_the_failing_dependency() -> None:
    container = Container()
    container.job_store.override(providers.Object(_UnreachableStore()))
    async with app_client(container) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["dependencies"] == [
        {"name": "jobStore", "status": "degraded", "reason": "connection refused"}
    ]


async def test_an_unexpected_error_is_a_generic_500_envelope() -> None:
    container = Container()
    container.train_gbm.override(providers.Object(_ExplodingTraining()))
    # Captured rather than rendered: structlog's default renderer (create_app leaves logging to
    # create_app_from_env) formats the traceback with every frame's locals, which takes seconds.
    async with app_client(container) as client:
        with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            response = await client.post(
                "/train/gbm",
                json={"data": {"columns": small()}, "label": "y"},
                headers={"X-Request-Id": "boom-1"},
            )
    error = _error(response, 500, "INTERNAL")
    assert "secret" not in response.text
    assert error["requestId"] == "boom-1" and error["details"] == []
    # The details go to the log, on a line bound to the request id.
    [logged] = [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert logged["request_id"] == "boom-1" and logged["error_type"] == "RuntimeError"


async def test_the_training_deadline_counts_the_upload(make_client: ClientFactory) -> None:
    # The platform's timeout runs from when it sent the request: a slow upload that used the whole
    # deadline must not then start a training that the platform no longer waits for.
    body = json.dumps({"data": {"columns": small()}, "label": "y"}).encode()

    async def slowly() -> AsyncIterator[bytes]:
        yield body[: len(body) // 2]
        await asyncio.sleep(0.4)
        yield body[len(body) // 2 :]

    async with make_client(train_timeout_seconds=0.3) as client:
        response = await client.post(
            "/train/gbm", content=slowly(), headers={"content-type": "application/json"}
        )
        error = _error(response, 504, "TIMEOUT")
        assert "of the request's arrival" in error["message"]
        health = (await client.get("/health")).json()
        assert health["compute"]["busy"] == 0 and health["compute"]["queued"] == 0


async def test_a_training_over_its_time_limit_is_504_timeout(make_client: ClientFactory) -> None:
    # A fresh worker must import LightGBM before it trains: far more than 50 ms.
    async with make_client(
        compute="process", workers=1, threads_per_task=1, train_timeout_seconds=0.05
    ) as client:
        columns = dataset(n=3000, seed=1)
        response = await client.post("/train/gbm", json={"data": {"columns": columns}, "label": "converted"})
        _error(response, 504, "TIMEOUT")
        health = (await client.get("/health")).json()
        assert health["compute"]["busy"] == 0 and health["compute"]["queued"] == 0
