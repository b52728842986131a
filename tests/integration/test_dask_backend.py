"""The Dask backend against a real `distributed.LocalCluster` (2 worker processes, 1 thread each) and
the real PostgreSQL: a 200,000-row table in its own schema, trained through the HTTP API with
ML_WORKER_DASK_MIN_ROWS lowered so that 150,000 rows go to the cluster and 50,000 stay local."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest

from domain.gbm.scorer import load_model
from support.app import app_client
from support.http import finished_job
from support.node_parity import verify_in_node
from support.postgres import DSN, require_postgres

pytestmark = [pytest.mark.integration, pytest.mark.slow]
distributed = pytest.importorskip("distributed")

SCHEMA = f"dask_{uuid.uuid4().hex[:8]}"
TABLE = f"{SCHEMA}.ds_customers"
BIG_TENANT_ROWS, SMALL_TENANT_ROWS = 150_000, 50_000
MIN_ROWS = 100_000
FEATURES = ["income", "age", "visits", "spend", "region", "plan"]


async def _seed() -> None:
    rng = np.random.default_rng(16)
    n = BIG_TENANT_ROWS + SMALL_TENANT_ROWS
    income, age = rng.normal(50, 15, n), rng.integers(18, 80, n)
    visits, spend = rng.poisson(3, n), rng.gamma(2.0, 30.0, n)
    region = rng.choice(["north", "south", "east", "west"], n)
    plan = rng.choice(["free", "basic", "pro"], n, p=[0.6, 0.3, 0.1])
    margin = (
        (income - 50) / 15
        + (region == "east") * 1.2
        + (plan == "pro") * 0.8
        + 0.15 * visits
        - 0.01 * (age - 50)
        + rng.normal(0, 1, n)
    )
    converted = (margin > 0.6).astype(int)
    tenant = np.where(np.arange(n) % 4 == 3, "t2", "t1")  # every fourth row: 50,000 for t2
    # Three well-separated groups, for the segmentations to find.
    group = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    centres = np.array([[0.0, 0.0], [6.0, 6.0], [0.0, 10.0]])
    recency, frequency = (centres[group] + rng.normal(0, 1, (n, 2))).T
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f'CREATE SCHEMA "{SCHEMA}"')
        await conn.execute(
            f'CREATE TABLE "{SCHEMA}".ds_customers ("tenantId" text, income double precision, age integer, '
            "visits integer, spend double precision, region text, plan text, converted integer, "
            "recency double precision, frequency double precision)"
        )
        records = zip(
            tenant.tolist(),
            income.tolist(),
            age.tolist(),
            visits.tolist(),
            spend.tolist(),
            region.tolist(),
            plan.tolist(),
            converted.tolist(),
            recency.tolist(),
            frequency.tolist(),
            strict=True,
        )
        await conn.copy_records_to_table("ds_customers", records=list(records), schema_name=SCHEMA)
        await conn.execute(f'ANALYZE "{SCHEMA}".ds_customers')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def seeded() -> Iterator[str]:
    require_postgres()
    asyncio.run(_seed())
    yield DSN

    async def drop() -> None:
        conn = await asyncpg.connect(DSN)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
        await conn.close()

    asyncio.run(drop())


@pytest.fixture(scope="module")
def cluster(seeded: str) -> Iterator[Any]:
    # The workers read the table with their own DATABASE_URL, as a deployment's workers would.
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"DATABASE_URL": seeded},
    ) as local:
        yield local


def _settings(database_url: str, scheduler: str | None) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "database_schemas": f"public,{SCHEMA}",
        "dask_scheduler": scheduler,
        "dask_min_rows": MIN_ROWS,
    }


@pytest.fixture
async def client(seeded: str, cluster: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(**_settings(seeded, cluster.scheduler_address)) as c:
        yield c


def _training(tenant: str, **extra: Any) -> dict[str, Any]:
    return {
        "data": {"table": TABLE, "columns": [*FEATURES, "converted"], "filters": {"tenantId": tenant}},
        "label": "converted",
        "params": {"numIterations": 30, "numLeaves": 15},
        **extra,
    }


def _read_tasks(cluster: Any) -> int:
    """Tasks of the parts' reads the scheduler has seen finish: whether a training went there."""
    prefix = cluster.scheduler.task_prefixes.get("read_task")
    return (
        0
        if prefix is None
        else int(sum(prefix.state_counts.values()) if hasattr(prefix, "state_counts") else len(prefix.groups))
    )


async def test_a_large_table_trains_on_the_cluster_as_well_as_locally(
    client: httpx.AsyncClient, seeded: str, cluster: Any
) -> None:
    started = time.perf_counter()
    answer = await client.post("/train/gbm", json=_training("t1", includeParityFixture=True))
    dask_seconds = time.perf_counter() - started
    assert answer.status_code == 200, answer.text
    trained = answer.json()
    assert _read_tasks(cluster) > 0  # it ran on the cluster
    metrics = trained["metrics"]
    # The tenant filter held on every part: t1's rows only, all of them.
    assert metrics["trainingSamples"] + metrics["validationSamples"] == BIG_TENANT_ROWS
    assert abs(metrics["validationSamples"] - 0.2 * BIG_TENANT_ROWS) <= 10

    async with app_client(**_settings(seeded, None)) as local_client:
        started = time.perf_counter()
        local = await local_client.post("/train/gbm", json=_training("t1"))
        local_seconds = time.perf_counter() - started
    assert local.status_code == 200, local.text
    local_auc, dask_auc = local.json()["metrics"]["auc"], metrics["auc"]
    print(f"AUC local {local_auc:.4f} ({local_seconds:.1f} s), dask {dask_auc:.4f} ({dask_seconds:.1f} s)")
    assert abs(dask_auc - local_auc) <= 0.01

    # The drift baseline: the training rows summarised as locally (other rows of the same table,
    # so the deciles agree to within sampling, not exactly).
    reference, local_reference = trained["modelState"]["reference"], local.json()["modelState"]["reference"]
    assert reference["rows"] == metrics["trainingSamples"]
    assert [f["name"] for f in reference["fields"]] == [f["name"] for f in local_reference["fields"]]
    for field, local_field in zip(reference["fields"], local_reference["fields"], strict=True):
        assert sum(field["shares"]) + field["missing_share"] + field.get("other_share", 0) == pytest.approx(1)
        if field["kind"] == "numeric":
            spread = local_field["edges"][-1] - local_field["edges"][0]
            assert np.allclose(field["edges"], local_field["edges"], atol=0.05 * spread), field["name"]
    assert reference["score"]["rows"] == metrics["validationSamples"]
    assert reference["performance"]["auc"] == pytest.approx(metrics["auc"])

    # Parity: the Dask-trained modelState scores in the Python scorer as LightGBM scored the rows.
    model = load_model(trained["modelState"])
    fixture = trained["parityFixture"]
    rows, raw = fixture["rows"], fixture["rawScores"]
    assert len(rows) > 100
    for row, expected in zip(rows, raw, strict=True):
        assert model.score(row).raw_margin == pytest.approx(expected, abs=1e-12)
    # And in the JavaScript scorer the platform runs, by its own pre-activation check.
    report = verify_in_node(answer.text)
    if report is not None:
        assert report["ok"] is True and report["checked"] == len(rows), report


async def test_a_compute_process_is_the_dask_client(seeded: str, cluster: Any) -> None:
    # The production shape: the training runs in the process pool, whose process is the Dask client.
    before = _read_tasks(cluster)
    async with app_client(compute="process", **_settings(seeded, cluster.scheduler_address)) as c:
        answer = await c.post("/train/gbm", json=_training("t1", params={"numIterations": 10}))
    assert answer.status_code == 200, answer.text
    metrics = answer.json()["metrics"]
    assert metrics["trainingSamples"] + metrics["validationSamples"] == BIG_TENANT_ROWS
    assert _read_tasks(cluster) > before


async def test_an_async_training_job_runs_on_the_cluster(client: httpx.AsyncClient, cluster: Any) -> None:
    # `"async": true`, the path for tables that take longer: a gbm_training job like any other.
    before = _read_tasks(cluster)
    accepted = await client.post(
        "/train/gbm", json=_training("t1", params={"numIterations": 10}, **{"async": True})
    )
    assert accepted.status_code == 202, accepted.text
    job = await finished_job(client, accepted.headers["location"])
    assert job["status"] == "completed", job
    metrics = job["result"]["metrics"]
    assert metrics["trainingSamples"] + metrics["validationSamples"] == BIG_TENANT_ROWS
    assert _read_tasks(cluster) > before


async def test_a_small_table_stays_local(client: httpx.AsyncClient, cluster: Any) -> None:
    before = _read_tasks(cluster)
    answer = await client.post("/train/gbm", json=_training("t2"))
    assert answer.status_code == 200, answer.text
    metrics = answer.json()["metrics"]
    assert metrics["trainingSamples"] + metrics["validationSamples"] == SMALL_TENANT_ROWS
    assert _read_tasks(cluster) == before


async def test_the_cluster_path_needs_the_tenant_filter_too(client: httpx.AsyncClient) -> None:
    body = _training("t1")
    body["data"]["filters"] = {}
    answer = await client.post("/train/gbm", json=body)
    assert answer.status_code == 422, answer.text
    assert "tenantId" in answer.text


async def test_an_unreachable_scheduler_refuses_large_tables_only(seeded: str) -> None:
    async with app_client(**_settings(seeded, "tcp://127.0.0.1:9")) as c:
        health = await c.get("/health")
        assert health.status_code == 200, health.text
        dask = [d for d in health.json()["dependencies"] if d["name"] == "dask"]
        assert dask and dask[0]["status"] == "degraded" and "127.0.0.1:9" in dask[0]["reason"]
        assert health.json()["status"] == "degraded"

        big = await c.post("/train/gbm", json=_training("t1"))
        assert big.status_code == 503, big.text
        assert big.json()["error"]["code"] == "DEPENDENCY_UNAVAILABLE"

        small = await c.post("/train/gbm", json=_training("t2", params={"numIterations": 5}))
        assert small.status_code == 200, small.text
        rows = [{"x": float(i % 7), "y": int(i % 7 > 3)} for i in range(60)]
        inline = await c.post(
            "/train/gbm", json={"data": {"rows": rows}, "label": "y", "params": {"numIterations": 5}}
        )
        assert inline.status_code == 200, inline.text


async def test_a_worker_killed_during_training_fails_clearly(client: httpx.AsyncClient, cluster: Any) -> None:
    body = _training("t1", params={"numIterations": 3000, "numLeaves": 63, "learningRate": 0.01})
    killed = threading.Event()

    def kill_when_training() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed.is_set():
            tasks = list(cluster.scheduler.tasks.items())
            if any(str(key).startswith("_train_part") and ts.state == "processing" for key, ts in tasks):
                time.sleep(0.5)  # inside LightGBM's training loop
                worker = next(iter(cluster.workers.values()))
                os.kill(worker.process.pid, 9)
                killed.set()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_training, daemon=True)
    killer.start()
    started = time.perf_counter()
    answer = await client.post("/train/gbm", json=body)
    took = time.perf_counter() - started
    killer.join(5)
    assert killed.is_set(), "the training never reached LightGBM on the workers"
    print(f"killed worker -> {answer.status_code} in {took:.1f} s: {answer.text[:300]}")
    assert answer.status_code in (500, 503), answer.text
    assert answer.json()["error"]["code"] == "WORKER_LOST"
    assert took < 60


SEGMENT_FIELDS = ["recency", "frequency", "region"]


async def test_a_large_table_is_segmented_on_the_cluster(client: httpx.AsyncClient, cluster: Any) -> None:
    before = _read_tasks(cluster)
    accepted = await client.post(
        "/analyze/segments",
        json={
            "data": {"table": TABLE, "columns": SEGMENT_FIELDS, "filters": {"tenantId": "t1"}},
            "fields": SEGMENT_FIELDS,
            "minClusters": 2,
            "maxClusters": 5,
        },
    )
    assert accepted.status_code == 202, accepted.text
    job = await finished_job(client, accepted.headers["location"])
    assert job["status"] == "completed", job
    result = job["result"]
    assert result["rowCount"] == BIG_TENANT_ROWS
    assert result["k"] == 3
    assert sum(segment["size"] for segment in result["segments"]) == BIG_TENANT_ROWS
    assert _read_tasks(cluster) > before


async def test_the_cluster_segmentation_agrees_with_the_local_one(seeded: str, cluster: Any) -> None:
    from sklearn.metrics import adjusted_rand_score

    from adapters.dask.segmenter import DaskSegmenter
    from adapters.dask.table_dataset import DaskTableDataset
    from adapters.postgres.table_source import SqlDatasetSource
    from adapters.segmentation.segmenter import fit_segments
    from domain.data import TableRef
    from domain.segmentation import SegmentationSpec

    source = SqlDatasetSource(seeded, allowed_schemas=("public", SCHEMA))
    ref = TableRef(TABLE, columns=tuple(SEGMENT_FIELDS), filters={"tenantId": "t1"})
    try:
        read = await source.describe(ref, max_rows=1_000_000, at_least=1)
        local_data = await source.load(ref, max_rows=1_000_000)
    finally:
        await source.close()
    assert read is not None
    spec = SegmentationSpec(fields=tuple(SEGMENT_FIELDS), min_clusters=2, max_clusters=5)
    started = time.perf_counter()
    labels, on_cluster = await asyncio.to_thread(
        DaskSegmenter(cluster.scheduler_address, seeded).fit_segments,
        DaskTableDataset(read),
        spec,
        lambda *_: None,
        labels=True,
    )
    cluster_seconds = time.perf_counter() - started
    started = time.perf_counter()
    local_labels, local = await asyncio.to_thread(fit_segments, local_data, spec, lambda *_: None)
    local_seconds = time.perf_counter() - started
    ari = adjusted_rand_score(local_labels, labels)
    print(f"segmentation: local {local_seconds:.1f} s, dask {cluster_seconds:.1f} s, ARI {ari:.4f}")
    assert on_cluster.k == local.k == 3
    assert ari >= 0.95
    local_sizes = [s.size for s in local.segments]
    assert [
        abs(s.size - size) <= 0.01 * size for s, size in zip(on_cluster.segments, local_sizes, strict=True)
    ]
