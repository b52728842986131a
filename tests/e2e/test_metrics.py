"""/metrics as a scrape shows it: the conventional names (the compute pool's gauges one metric per
meaning, a training's duration under its outcome, the jobs by type and final state), the server's
own process metrics, and one resident-memory series per live compute process."""

from __future__ import annotations

import os
import signal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.app import app_client, make_app, started
from support.eventually import eventually
from support.http import finished_job

pytestmark = pytest.mark.timeout(180)

MB = 1 << 20
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def training(label: str = "y") -> dict[str, object]:
    columns = {"x": [float(i % 7) for i in range(50)], "y": [i % 2 for i in range(50)]}
    return {"data": {"columns": columns}, "label": label, "params": {"numIterations": 2}}


async def test_the_names_follow_the_conventions_and_count_what_happened() -> None:
    async with app_client() as client:
        assert (await client.post("/train/gbm", json=training())).status_code == 200
        refused = await client.post("/train/gbm", json=training(label="ghost"))
        assert refused.status_code == 422, refused.text
        segments = {
            "data": {"columns": {"a": [float(i % 3) * 10 + (i % 5) * 0.1 for i in range(200)]}},
            "minClusters": 2,
            "maxClusters": 3,
        }
        accepted = await client.post("/analyze/segments", json=segments)
        assert accepted.status_code == 202, accepted.text
        assert (await finished_job(client, accepted.headers["location"]))["status"] == "completed"
        samples = await scrape(client)

    # Trainings by outcome (the error code of a refused one), not one unlabelled histogram.
    assert value(samples, "ml_worker_training_duration_seconds_count", outcome="ok") == 1
    assert value(samples, "ml_worker_training_duration_seconds_count", outcome="VALIDATION_ERROR") == 1
    assert value(samples, "ml_worker_training_rows_count") == 1  # rows of the successful one only
    # The job, once submitted and once finished as completed; nothing running or queued after.
    assert value(samples, "ml_worker_jobs_submitted_total", type="segmentation") == 1
    assert series(samples, "ml_worker_jobs_finished_total") == {
        frozenset({("type", "segmentation"), ("status", "completed"), ("code", "")}): 1.0
    }
    assert (
        value(samples, "ml_worker_job_duration_seconds_count", type="segmentation", status="completed") == 1
    )
    assert value(samples, "ml_worker_jobs_running", type="segmentation") == 0
    assert value(samples, "ml_worker_jobs_claimed_total", type="segmentation") == 1
    assert value(samples, "ml_worker_job_queue_depth", state="queued") == 0
    # The compute pool: one metric per meaning (it was one `ml_worker_compute{state=...}` mixing
    # sizes, limits and counts, with camelCase label values).
    assert value(samples, "ml_worker_compute_workers") == 1
    assert value(samples, "ml_worker_compute_threads_per_task") == 1
    assert value(samples, "ml_worker_compute_queue_limit") is not None
    assert set(series(samples, "ml_worker_compute_tasks")) == {
        frozenset({("state", "running")}),
        frozenset({("state", "queued")}),
    }
    assert not series(samples, "ml_worker_compute")
    # The server's own process metrics (tasks run in this process here: no compute series).
    assert (value(samples, "process_resident_memory_bytes") or 0) > 10 * MB
    assert value(samples, "process_cpu_seconds_total") is not None
    assert not series(samples, "ml_worker_compute_process_resident_memory_bytes")


async def test_each_live_compute_process_has_one_resident_memory_series() -> None:
    app = make_app(compute="process", workers=2, threads_per_task=1)
    async with started(app, timeout=120) as client:
        runner = app.state.services.runner
        pids = set(runner.worker_pids())
        assert len(pids) == 2

        def memory(samples: Samples) -> dict[str, float]:
            found = series(samples, "ml_worker_compute_process_resident_memory_bytes")
            return {dict(labels)["pid"]: size for labels, size in found.items()}

        first = memory(await scrape(client))
        assert set(first) == {str(p) for p in pids}
        # Each process imports the tasks' libraries (numpy, LightGBM, scikit-learn) as it starts:
        # read at each scrape, its size grows past what a bare interpreter holds.
        loaded = await eventually(
            lambda: scrape(client),
            lambda s: len(memory(s)) == 2 and all(size > 50 * MB for size in memory(s).values()),
            timeout=60,
            what="both compute processes with their libraries loaded",
        )
        assert all(size < 4096 * MB for size in memory(loaded).values())
        # A worker that dies leaves the gauge with the scrape after its death, not a stale value.
        gone = min(pids)
        os.kill(gone, signal.SIGKILL)
        await eventually(
            lambda: scrape(client),
            lambda s: str(gone) not in memory(s),
            what="the dead worker's series gone",
        )
