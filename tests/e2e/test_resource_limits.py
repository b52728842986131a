"""Bounded cost per request over HTTP: the reproduced bombs are refused with 422 RESOURCE_LIMIT
before any work (the compute runner runs nothing), ordinary requests pass at a 4 GiB pod's limit,
and a task that outgrows its process's limit anyway fails OUT_OF_MEMORY while the server lives on."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from dependency_injector import providers

from adapters.compute.inline_runner import InlineRunner
from domain.budget import ResourceBudget
from entrypoints.container import Container
from support.app import app_client

pytestmark = pytest.mark.timeout(120)

POD_MB = 4096


class CountingRunner(InlineRunner):
    """The inline runner, counting what it was asked to run."""

    def __init__(self) -> None:
        super().__init__(queue_limit=8)
        self.runs = 0

    async def run(self, task: Any, *args: Any, **kwargs: Any) -> Any:
        self.runs += 1
        return await super().run(task, *args, **kwargs)


def _columns(rows: int, features: int, seed: int = 0) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(rows, features)), 3)
    columns: dict[str, Any] = {f"x{i}": x[:, i].tolist() for i in range(features)}
    columns["y"] = (x[:, 0] > 0).astype(int).tolist()
    return columns


def _container(runner: CountingRunner) -> Container:
    container = Container()
    container.runner.override(providers.Object(runner))
    return container


HISTOGRAM_BOMB = {"numLeaves": 4096, "maxBin": 65535, "minDataInLeaf": 1}
MODEL_BOMB = {"numIterations": 200, "numLeaves": 4096, "minDataInLeaf": 1}


async def test_the_reproduced_bombs_are_refused_before_any_work() -> None:
    runner = CountingRunner()
    async with app_client(_container(runner), memory_limit_mb=POD_MB) as client:
        memory = await client.post(
            "/train/gbm",
            json={"data": {"columns": _columns(40_000, 20)}, "label": "y", "params": HISTOGRAM_BOMB},
        )
        model = await client.post(
            "/train/gbm", json={"data": {"columns": _columns(20_000, 10)}, "label": "y", "params": MODEL_BOMB}
        )
    assert runner.runs == 0
    for response in (memory, model):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "RESOURCE_LIMIT"
    error = memory.json()["error"]
    # Wire names, the setting, and which way to move each parameter.
    assert "params.numLeaves" in error["message"] and "ML_WORKER_MEMORY_LIMIT_MB" in error["message"]
    advice = {d["field"]: d["message"] for d in error["details"]}
    assert advice["params.numLeaves"].startswith("lower") and advice["params.maxBin"].startswith("lower")
    assert advice["params.minDataInLeaf"].startswith("raise")
    # The second fits in memory; only its model is too large.
    model_error = model.json()["error"]
    assert "ML_WORKER_MAX_MODEL_MB" in model_error["message"]
    assert "ML_WORKER_MEMORY_LIMIT_MB" not in model_error["message"]
    assert "params.numIterations" in {d["field"] for d in model_error["details"]}


async def test_a_segmentation_bomb_is_refused_before_any_job() -> None:
    runner = CountingRunner()
    # 20 fields of 100 categories each become 2,000 one-hot columns of 20,000 rows.
    columns = {f"c{i}": [f"v{(j * (i + 1)) % 101}" for j in range(20_000)] for i in range(20)}
    async with app_client(_container(runner), memory_limit_mb=600) as client:
        response = await client.post(
            "/analyze/segments",
            json={"data": {"columns": columns}, "fields": list(columns), "maxCategories": 100},
        )
        runs_after_the_bomb = runner.runs
        ordinary = await client.post(
            "/analyze/segments", json={"data": {"columns": {"n": list(range(2000))}}, "maxClusters": 3}
        )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "RESOURCE_LIMIT"
    assert {"fields", "maxCategories"} <= {d["field"] for d in error["details"]}
    assert ordinary.status_code == 202, ordinary.text
    assert runs_after_the_bomb == 0  # the refused one never became a job


async def test_ordinary_trainings_pass_at_a_4_gib_limit() -> None:
    runner = CountingRunner()
    async with app_client(_container(runner), memory_limit_mb=POD_MB) as client:
        default = await client.post(
            "/train/gbm", json={"data": {"columns": _columns(5000, 20)}, "label": "y"}
        )
        deeper = await client.post(
            "/train/gbm",
            json={
                "data": {"columns": _columns(5000, 10)},
                "label": "y",
                "params": {"numIterations": 300, "numLeaves": 63, "maxBin": 1023},
            },
        )
        # Categoricals count by their real values (3 here), not by `maxCategories`.
        wide = _columns(100_000, 2) | {f"c{i}": ["a", "b", "c"] * 33_333 + ["a"] for i in range(40)}
        categorical = await client.post(
            "/train/gbm",
            json={"data": {"columns": wide}, "label": "y", "maxCategories": 1000, "params": {"maxBin": 1023}},
        )
    assert default.status_code == 200, default.text
    assert deeper.status_code == 200, deeper.text
    assert categorical.status_code == 200, categorical.text
    assert runner.runs == 3


async def test_out_of_memory_end_to_end_and_the_server_lives_on() -> None:
    """A compute process held to 150 MB: importing LightGBM alone grows past it, so the training is
    stopped by the watchdog (the estimate is switched off here to reach it)."""
    container = Container()
    container.budget.override(providers.Object(ResourceBudget(process_bytes=150 << 20)))
    async with app_client(container, compute="process", workers=1, threads_per_task=1) as client:
        response = await client.post("/train/gbm", json={"data": {"columns": _columns(500, 3)}, "label": "y"})
        health = await client.get("/health")
        segments = await client.post(
            "/analyze/segments", json={"data": {"columns": {"n": list(range(200))}}, "maxClusters": 3}
        )
        job = await _finished(client, segments.json()["jobId"])
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "OUT_OF_MEMORY"
    assert health.status_code == 200
    # A job's failure carries the same code.
    assert job["status"] == "failed" and job["error"]["code"] == "OUT_OF_MEMORY", job


async def _finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    import asyncio

    for _ in range(400):
        body: dict[str, Any] = (await client.get(f"/status/{job_id}")).json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {body}")
