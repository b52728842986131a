"""The durable queue's HTTP contract: Idempotency-Key, a full queue refused before the body is read,
async training as a `gbm_training` job, and the attempts and replica a job shows. The real app
over the memory store and inline compute; holding the inline runner's one slot keeps jobs queued."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
from dependency_injector import providers
from sklearn.metrics import roc_auc_score

from adapters.compute.inline_runner import InlineRunner
from domain.gbm.scorer import load_model
from entrypoints.container import Container
from support.app import make_app, started
from support.http import error_of, fields_of, finished_job
from support.schemas import schema_errors

pytestmark = pytest.mark.timeout(120)

KEY = "Idempotency-Key"
ARROW = "application/vnd.apache.arrow.stream"


@asynccontextmanager
async def serving(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, InlineRunner, Any]]:
    """A client, the inline runner (one slot) and the app's services."""
    runner = InlineRunner(queue_limit=4)
    container = Container()
    container.runner.override(providers.Object(runner))
    app = make_app(container, **overrides)
    async with started(app) as client:
        yield client, runner, app.state.services


@contextmanager
def slot_held(runner: InlineRunner) -> Iterator[None]:
    """The runner's one slot taken: the dispatcher claims nothing, so a job stays queued."""
    place = runner.reserve()
    try:
        yield
    finally:
        place.release()


def points(n: int = 300) -> dict[str, list[float]]:
    rng = np.random.default_rng(4)
    centers = np.repeat(np.array([[0.0, 0.0], [6.0, 6.0], [0.0, 6.0]]), n // 3, axis=0)
    x = centers + rng.normal(scale=0.5, size=centers.shape)
    return {"a": x[:, 0].round(6).tolist(), "b": x[:, 1].round(6).tolist()}


def training_data(n: int = 800, seed: int = 7) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-3 * signal))).astype(int)
    return {
        "signal": signal.round(6).tolist(),
        "noise": rng.normal(size=n).round(6).tolist(),
        "converted": y.tolist(),
    }


TRAINING = {"label": "converted", "params": {"numIterations": 25, "seed": 3}, "validationFraction": 0.25}


def segments(key: str | None = None) -> dict[str, Any]:
    return {
        "json": {"data": {"columns": points()}, "minClusters": 2, "maxClusters": 4},
        "headers": {KEY: key} if key is not None else {},
    }


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/status/{body['jobId']}"
    assert not schema_errors("JobAccepted", body), schema_errors("JobAccepted", body)
    return body


# ------------------------------------------------------------------------- Idempotency-Key


async def test_the_same_key_answers_the_same_job_and_queues_one() -> None:
    async with serving() as (client, runner, services):
        with slot_held(runner):
            first = accepted(await client.post("/analyze/segments", **segments("order-17")))
            again = accepted(await client.post("/analyze/segments", **segments("order-17")))
            assert again == first == {"jobId": first["jobId"], "status": "queued"}
            assert (await services.job_store.queue_depth()).queued == 1
            other = accepted(await client.post("/analyze/segments", **segments("order-18")))
            assert other["jobId"] != first["jobId"]
            assert (await services.job_store.queue_depth()).queued == 2
        job = await finished_job(client, f"/status/{first['jobId']}")
        assert job["status"] == "completed", job
        # A retry after the job ran: the same job, with the status it now has, and still one job.
        later = accepted(await client.post("/analyze/segments", **segments("order-17")))
        assert later == {"jobId": first["jobId"], "status": "completed"}
        assert (await services.job_store.queue_depth()).queued == 0
        # The key of a segmentation is not a training's: refused, naming the header, and nothing queued.
        training = {**TRAINING, "async": True, "data": {"columns": training_data(100)}}
        refused = await client.post("/train/gbm", json=training, headers={KEY: "order-17"})
        error = error_of(refused, 422, "VALIDATION_ERROR")
        assert fields_of(error) == [KEY] and "segmentation" in error["message"]
        assert (await services.job_store.queue_depth()).queued == 0


@pytest.mark.parametrize(
    "value",
    [b"", b"k" * 201, "cl\u00e9".encode(), "cl\u00e9".encode("latin-1"), b"a\x01b", b"tab\there"],
    ids=["empty", "201-chars", "utf8", "latin1", "control", "tab"],
)
@pytest.mark.parametrize("path", ["/analyze/segments", "/analyze/drift", "/train/gbm"])
async def test_a_bad_key_is_400_naming_the_header(value: bytes, path: str) -> None:
    async with serving() as (client, _, services):
        response = await client.post(path, json={"data": {"columns": points()}}, headers={KEY: value})
        error = error_of(response, 400, "VALIDATION_ERROR")
        assert fields_of(error) == [KEY] and KEY in error["message"]
        assert (await services.job_store.queue_depth()).queued == 0


async def test_two_keys_are_400_and_the_longest_key_is_accepted() -> None:
    async with serving() as (client, runner, _):
        with slot_held(runner):
            both = await client.post(
                "/analyze/segments",
                json=segments()["json"],
                headers=[(KEY, "one"), (KEY, "two")],
            )
            assert fields_of(error_of(both, 400, "VALIDATION_ERROR")) == [KEY]
            longest = "~ !" * 66 + "ab"  # 200 printable characters, spaces inside
            assert len(longest) == 200
            first = accepted(await client.post("/analyze/segments", **segments(longest)))
            assert accepted(await client.post("/analyze/segments", **segments(longest))) == first


# ------------------------------------------------------------------------- a full queue, before the body


class CountedBody:
    """A 20 MB JSON body sent in 1 MB chunks, counting how many the server asked for."""

    def __init__(self, megabytes: int = 20) -> None:
        head = b'{"data": {"columns": {"a": ['
        row = b"1.0, " * (1 << 18)  # ~1.25 MB per chunk
        self.chunks = [head] + [row] * megabytes + [b"1.0]}}}"]
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk


def arrow_body() -> bytes:
    table = pa.table(training_data(200))
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


async def test_a_full_queue_is_503_busy_before_the_body_is_read() -> None:
    async with serving(max_queued_jobs=1, max_body_mb=64) as (client, runner, services):
        with slot_held(runner):
            accepted(await client.post("/analyze/segments", **segments()))
            # The room is read at most every room_refresh_seconds (0.5 s): past that, it is full.
            await asyncio.sleep(0.6)
            for path in ("/analyze/segments", "/analyze/policies", "/analyze/content", "/analyze/drift"):
                body = CountedBody()
                response = await client.post(path, content=body, headers={"content-type": "application/json"})
                error = error_of(response, 503, "BUSY")
                assert "ML_WORKER_MAX_QUEUED_JOBS" in error["message"]
                assert int(response.headers["retry-after"]) > 0
                assert body.sent == 0, f"{path}: {body.sent} chunks of the body were read before BUSY"
            # An async training with a binary body says so in `?request=`: refused before its body too.
            request = json.dumps({**TRAINING, "async": True})
            body = CountedBody()
            response = await client.post(
                "/train/gbm", params={"request": request}, content=body, headers={"content-type": ARROW}
            )
            error_of(response, 503, "BUSY")
            assert body.sent == 0
            # With a JSON body, `async` is in the body: read, then refused before any job.
            response = await client.post(
                "/train/gbm", json={**TRAINING, "async": True, "data": {"columns": training_data(100)}}
            )
            error_of(response, 503, "BUSY")
            assert (await services.job_store.queue_depth()).queued == 1


# ------------------------------------------------------------------------- async training


def _scores_as_trained(result: dict[str, Any], columns: dict[str, list[Any]]) -> None:
    model = load_model(result["modelState"])
    assert len(result["modelState"]["trees"]) == result["metrics"]["numTrees"]
    names = list(columns)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    p = np.array([model.score(row).score for row in rows])
    assert roc_auc_score(columns["converted"], p) > 0.8


async def test_an_async_training_is_a_job_whose_result_is_the_training_answer() -> None:
    columns = training_data()
    async with serving() as (client, runner, services):
        with slot_held(runner):
            queued = accepted(
                await client.post(
                    "/train/gbm",
                    json={**TRAINING, "async": True, "data": {"columns": columns}},
                    headers={KEY: "train-1"},
                )
            )
            waiting = (await client.get(f"/status/{queued['jobId']}")).json()
            assert waiting["type"] == "gbm_training" and waiting["status"] == "queued"
            assert waiting["attempts"] == 0 and waiting["replica"] is None
            assert not schema_errors("Job", waiting), schema_errors("Job", waiting)
            # The key holds for a training too.
            again = await client.post(
                "/train/gbm",
                json={**TRAINING, "async": True, "data": {"columns": columns}},
                headers={KEY: "train-1"},
            )
            assert accepted(again)["jobId"] == queued["jobId"]
        job = await finished_job(client, f"/status/{queued['jobId']}")
        assert job["status"] == "completed", job
        assert job["attempts"] == 1 and job["replica"] == services.jobs.owner
        assert not schema_errors("Job", job), schema_errors("Job", job)[:3]
        result = job["result"]
        assert not schema_errors("TrainGbmResponse", result)
        _scores_as_trained(result, columns)
        durations = result["durationMs"]
        assert durations["upload"] == 0 and durations["decode"] == 0 and durations["total"] > 0
        # The same request trained synchronously: the same model and metrics.
        sync = await client.post("/train/gbm", json={**TRAINING, "data": {"columns": columns}})
        assert sync.status_code == 200, sync.text
        assert sync.json()["modelState"]["content_hash"] == result["modelState"]["content_hash"]
        assert sync.json()["metrics"] == result["metrics"]


async def test_an_async_training_of_a_binary_body_says_so_in_the_request_parameter() -> None:
    async with serving() as (client, _, _services):
        response = await client.post(
            "/train/gbm",
            params={"request": json.dumps({**TRAINING, "async": True})},
            content=arrow_body(),
            headers={"content-type": ARROW},
        )
        job = await finished_job(client, f"/status/{accepted(response)['jobId']}")
        assert job["status"] == "completed" and job["type"] == "gbm_training", job
        metrics = job["result"]["metrics"]
        assert metrics["trainingSamples"] + metrics["validationSamples"] == 200


async def test_a_bad_async_training_is_refused_before_any_job() -> None:
    async with serving() as (client, _, services):
        refused = await client.post(
            "/train/gbm", json={"label": "ghost", "async": True, "data": {"columns": training_data(100)}}
        )
        assert fields_of(error_of(refused, 422, "VALIDATION_ERROR")) == ["label"]
        assert (await services.job_store.queue_depth()).queued == 0


# ------------------------------------------------------------------------- attempts and replica


async def test_a_job_shows_its_attempts_and_the_replica_that_ran_it() -> None:
    async with serving() as (client, runner, services):
        with slot_held(runner):
            job_id = accepted(await client.post("/analyze/segments", **segments()))["jobId"]
            waiting = (await client.get(f"/status/{job_id}")).json()
            assert (waiting["attempts"], waiting["replica"]) == (0, None)
        job = await finished_job(client, f"/status/{job_id}")
        assert job["status"] == "completed"
        assert job["attempts"] == 1
        # The host (a pod's name) and the process that ran it.
        assert job["replica"] == services.jobs.owner
        assert job["replica"].startswith(f"{socket.gethostname()}-{os.getpid()}-")
        assert not schema_errors("Job", job), schema_errors("Job", job)[:3]
        cancelled = (await client.delete(f"/status/{job_id}")).json()
        assert (cancelled["attempts"], cancelled["replica"]) == (1, services.jobs.owner)
