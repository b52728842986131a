"""Arrow IPC stream and Parquet bodies over the HTTP API: the body is the data, the other fields are
the `request` query parameter; the same validation, errors and limits as a JSON body."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from sklearn.datasets import make_blobs

from support.app import app_client
from support.http import error_of, fields_of, finished_job

pytestmark = pytest.mark.timeout(120)

ARROW = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
TRAINING = {
    "label": "converted",
    "validationFraction": 0,
    "params": {"numIterations": 10, "minDataInLeaf": 5},
}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client() as c:
        yield c


def customers(n: int = 400) -> dict[str, list[Any]]:
    rng = np.random.default_rng(5)
    signal = rng.normal(size=n)
    return {
        "id": list(range(n)),
        "signal": [round(float(v), 6) for v in signal],
        "colour": rng.choice(["red", "green", "blue"], size=n).tolist(),
        "converted": (rng.random(n) < 1 / (1 + np.exp(-3 * signal))).astype(int).tolist(),
    }


def arrow_body(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def parquet_body(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pl.from_arrow(table).write_parquet(sink)  # type: ignore[union-attr]
    return sink.getvalue()


def encoded(columns: dict[str, list[Any]], media_type: str) -> bytes:
    table = pa.table(columns)
    return arrow_body(table) if media_type == ARROW else parquet_body(table)


async def post(
    client: httpx.AsyncClient, path: str, body: bytes, media_type: str, fields: dict[str, Any] | str | None
) -> httpx.Response:
    if fields is not None:
        path += "?request=" + quote(fields if isinstance(fields, str) else json.dumps(fields))
    return await client.post(path, content=body, headers={"Content-Type": media_type})


@pytest.mark.parametrize("media_type", [ARROW, PARQUET])
async def test_a_binary_body_trains_the_model_its_json_form_trains(
    client: httpx.AsyncClient, media_type: str
) -> None:
    columns = customers()
    by_json = await client.post("/train/gbm", json={"data": {"columns": columns}, **TRAINING})
    # The text column dictionary-encoded, as Arrow writers often send it: it is still text.
    table = pa.table({**columns, "colour": pa.array(columns["colour"]).dictionary_encode()})
    body = arrow_body(table) if media_type == ARROW else parquet_body(table)
    binary = await post(client, "/train/gbm", body, media_type, TRAINING)
    assert by_json.status_code == binary.status_code == 200, binary.text
    assert binary.json()["modelState"]["content_hash"] == by_json.json()["modelState"]["content_hash"]
    assert binary.json()["metrics"]["trainingSamples"] == 400
    stages = binary.json()["durationMs"]
    assert list(stages)[:3] == ["upload", "decode", "parse"]
    assert stages["parse"] == pytest.approx(stages["upload"] + stages["decode"], abs=0.002)
    assert stages["decode"] > 0


async def test_a_json_body_reports_upload_and_decode_too(client: httpx.AsyncClient) -> None:
    answer = await client.post("/train/gbm", json={"data": {"rows": [
        {k: v[i] for k, v in customers().items()} for i in range(400)
    ]}, **TRAINING})  # fmt: skip
    assert answer.status_code == 200, answer.text
    stages = answer.json()["durationMs"]
    assert stages["parse"] == pytest.approx(stages["upload"] + stages["decode"], abs=0.002)


async def test_a_parquet_body_submits_an_analysis_that_completes(client: httpx.AsyncClient) -> None:
    x, _ = make_blobs(n_samples=600, centers=3, n_features=2, cluster_std=0.5, random_state=2)
    body = encoded({"a": x[:, 0].tolist(), "b": x[:, 1].tolist()}, PARQUET)
    answer = await post(
        client, "/analyze/segments", body, PARQUET, {"minClusters": 2, "maxClusters": 4, "schemaId": "s-1"}
    )
    assert answer.status_code == 202, answer.text
    job = await finished_job(client, answer.headers["location"])
    assert job["status"] == "completed", job
    assert job["result"]["k"] == 3 and job["result"]["schemaId"] == "s-1"
    assert sum(segment["size"] for segment in job["result"]["segments"]) == 600


@pytest.mark.parametrize(
    ("media_type", "body"),
    [
        (ARROW, b"\x00\x01 these bytes are no Arrow stream"),
        (ARROW, encoded(customers(), ARROW)[:-64]),  # cut short
        (PARQUET, b"PAR1 nor a Parquet file PAR1"),
        (PARQUET, encoded(customers(), PARQUET)[:-16]),
    ],
)
async def test_bytes_that_are_not_the_format_are_400_with_the_envelope(
    client: httpx.AsyncClient, media_type: str, body: bytes
) -> None:
    error = error_of(await post(client, "/train/gbm", body, media_type, TRAINING), 400, "VALIDATION_ERROR")
    assert fields_of(error) == ["body"]
    assert error["message"].startswith("the body is not ")


@pytest.mark.parametrize("media_type", [ARROW, PARQUET])
@pytest.mark.parametrize("odd", [[[1, 2]] * 400, [{"a": 1}] * 400], ids=["list", "struct"])
async def test_a_column_of_an_unsupported_type_is_422_naming_it(
    client: httpx.AsyncClient, media_type: str, odd: list[Any]
) -> None:
    body = encoded({**customers(), "tags": odd}, media_type)
    error = error_of(await post(client, "/train/gbm", body, media_type, TRAINING), 422, "VALIDATION_ERROR")
    assert error["details"] == [{"field": "tags", "message": error["details"][0]["message"]}]
    assert "column 'tags'" in error["message"]


async def test_the_checks_of_the_request_against_the_data_are_the_json_forms(
    client: httpx.AsyncClient,
) -> None:
    body = encoded(customers(), ARROW)
    error = error_of(
        await post(client, "/train/gbm", body, ARROW, {"label": "ghost"}), 422, "VALIDATION_ERROR"
    )
    assert fields_of(error) == ["label"]
    error = error_of(
        await post(client, "/train/gbm", body, ARROW, {"label": "converted", "params": {"numLeaves": 1}}),
        422,
        "VALIDATION_ERROR",
    )
    assert fields_of(error) == ["params.numLeaves"]


@pytest.mark.parametrize("media_type", [ARROW, PARQUET])
async def test_more_rows_than_max_rows_is_413(media_type: str) -> None:
    async with app_client(max_rows=399) as client:
        body = encoded(customers(400), media_type)
        error = error_of(
            await post(client, "/train/gbm", body, media_type, TRAINING), 413, "PAYLOAD_TOO_LARGE"
        )
        assert "ML_WORKER_MAX_ROWS" in error["message"]


async def test_a_body_over_the_limit_is_413() -> None:
    async with app_client(max_body_mb=0.001) as client:
        body = encoded(customers(), ARROW)
        assert len(body) > 1100
        error = error_of(await post(client, "/train/gbm", body, ARROW, TRAINING), 413, "PAYLOAD_TOO_LARGE")
        assert "ML_WORKER_MAX_BODY_MB" in error["message"]


async def test_the_request_parameter_is_checked(client: httpx.AsyncClient) -> None:
    body = encoded(customers(), ARROW)
    absent = error_of(await post(client, "/train/gbm", body, ARROW, None), 422, "VALIDATION_ERROR")
    without_label = error_of(
        await client.post("/train/gbm", json={"data": {"columns": customers()}}), 422, "VALIDATION_ERROR"
    )
    assert (
        absent["details"]
        == without_label["details"]
        == [{"field": "label", "message": "Field required", "type": "missing"}]
    )
    with_data = error_of(
        await post(client, "/train/gbm", body, ARROW, {"label": "converted", "data": {"rows": []}}),
        422,
        "VALIDATION_ERROR",
    )
    assert fields_of(with_data) == ["request.data"] and "request.data" in with_data["message"]
    malformed = error_of(await post(client, "/train/gbm", body, ARROW, '{"label": '), 400, "VALIDATION_ERROR")
    assert fields_of(malformed) == ["request"]
    not_an_object = error_of(await post(client, "/train/gbm", body, ARROW, "[1]"), 422, "VALIDATION_ERROR")
    assert fields_of(not_an_object) == ["request"]
    json_body = error_of(
        await client.post(
            "/train/gbm?request=%7B%7D", json={"data": {"columns": customers()}, "label": "converted"}
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert fields_of(json_body) == ["request"]


@pytest.mark.parametrize(
    "media_type", ["text/csv", "application/vnd.apache.arrow.file", "application/octet-stream"]
)
async def test_other_media_types_are_still_415(client: httpx.AsyncClient, media_type: str) -> None:
    body = encoded(customers(), ARROW)
    error = error_of(
        await post(client, "/train/gbm", body, media_type, TRAINING), 415, "UNSUPPORTED_MEDIA_TYPE"
    )
    assert ARROW in error["message"] and PARQUET in error["message"]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_arriving_in_pieces_is_read_whole(client: httpx.AsyncClient, declared: bool) -> None:
    body = encoded(customers(), ARROW)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    headers = {"Content-Type": ARROW, **({"Content-Length": str(len(body))} if declared else {})}
    answer = await client.post(
        "/train/gbm?request=" + quote(json.dumps(TRAINING)), content=pieces(), headers=headers
    )
    assert ("content-length" in answer.request.headers) is declared
    assert answer.status_code == 200, answer.text
    assert answer.json()["metrics"]["trainingSamples"] == 400


async def test_a_frame_on_the_bodys_memory_crosses_to_a_compute_process() -> None:
    """The numeric columns of an Arrow body are the body's own buffer (no copy); the frame still
    travels to a pool process and back as a result."""
    async with app_client(compute="process", workers=1, threads_per_task=1) as client:
        body = encoded(customers(), ARROW)
        trained = await post(client, "/train/gbm", body, ARROW, TRAINING)
        assert trained.status_code == 200, trained.text
        assert trained.json()["metrics"]["trainingSamples"] == 400
        x, _ = make_blobs(n_samples=300, centers=2, n_features=2, cluster_std=0.4, random_state=4)
        submitted = await post(
            client,
            "/analyze/segments",
            encoded({"a": x[:, 0].tolist(), "b": x[:, 1].tolist()}, ARROW),
            ARROW,
            {},
        )
        assert submitted.status_code == 202, submitted.text
        job = await finished_job(client, submitted.headers["location"])
        assert job["status"] == "completed", job
        assert sum(segment["size"] for segment in job["result"]["segments"]) == 300


async def test_a_body_longer_than_its_content_length_is_400(client: httpx.AsyncClient) -> None:
    # uvicorn's HTTP parser never delivers such a body; an ASGI server that did must not get a 500.
    headers = {"Content-Type": ARROW, "Content-Length": "10"}
    answer = await client.post("/train/gbm?request=%7B%7D", content=b"x" * 100, headers=headers)
    assert fields_of(error_of(answer, 400, "VALIDATION_ERROR")) == ["body"]
