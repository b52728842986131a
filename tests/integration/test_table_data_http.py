"""The `table` form of `data` through the HTTP API against the real PostgreSQL: training and
segmentation read a seeded ds_ table, tenants are filtered, hostile names are refused with the table
left intact, and a database outage is a 503 the worker recovers from."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from support.app import app_client
from support.http import finished_job

pytestmark = pytest.mark.integration

DSN = os.environ.get("ML_WORKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TABLE = f"ds_customers_{uuid.uuid4().hex[:8]}"
# The same rows under a name outside ML_WORKER_TABLE_PATTERN (^ds_): there, and never readable.
OUTSIDE = f"customers_{uuid.uuid4().hex[:8]}"


async def _seed(dsn: str) -> None:
    rng = np.random.default_rng(5)
    n = 600
    tenant = np.where(np.arange(n) < 400, "t1", "t2")
    income = rng.normal(50, 15, n)
    age = rng.integers(18, 80, n)
    region = rng.choice(["north", "south", "east"], n)
    converted = (income + (region == "east") * 20 + rng.normal(0, 10, n) > 60).astype(int)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f'CREATE TABLE "{TABLE}" (id bigint, "tenantId" text, income double precision, age integer, '
            "region text, signup timestamptz, converted integer)"
        )
        rows = [
            (
                i,
                str(tenant[i]),
                None if i % 50 == 0 else float(income[i]),
                int(age[i]),
                str(region[i]),
                None,
                int(converted[i]),
            )
            for i in range(n)
        ]
        await conn.copy_records_to_table(TABLE, records=rows)
        await conn.execute(f'CREATE TABLE "{OUTSIDE}" AS SELECT * FROM "{TABLE}"')
    finally:
        await conn.close()


async def _table_exists(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f'public."{TABLE}"'))
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def seeded() -> str:
    async def reachable() -> bool:
        try:
            conn = await asyncpg.connect(DSN, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    if not asyncio.run(reachable()):
        if os.environ.get("ML_WORKER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL at {DSN} is unreachable and ML_WORKER_REQUIRE_SERVICES=1")
        pytest.skip(f"PostgreSQL at {DSN} is unreachable")
    asyncio.run(_seed(DSN))
    yield DSN

    async def drop() -> None:
        conn = await asyncpg.connect(DSN)
        await conn.execute(f'DROP TABLE IF EXISTS "{TABLE}"; DROP TABLE IF EXISTS "{OUTSIDE}"')
        await conn.close()

    asyncio.run(drop())


async def _client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(database_url=database_url) as client:
        yield client


@pytest.fixture
async def client(seeded: str) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(seeded):
        yield c


async def test_training_reads_the_table_with_the_tenant_filter(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/train/gbm",
        json={
            "data": {
                "table": TABLE,
                "columns": ["income", "age", "region", "converted"],
                "filters": {"tenantId": "t1"},
            },
            "label": "converted",
            "params": {"numIterations": 30},
        },
    )
    assert answer.status_code == 200, answer.text
    metrics = answer.json()["metrics"]
    assert metrics["trainingSamples"] + metrics["validationSamples"] == 400  # tenant t1 only
    assert metrics["auc"] > 0.75
    assert {f["name"] for f in answer.json()["modelState"]["input_features"]} == {"income", "age", "region"}


async def test_segmentation_reads_the_table(client: httpx.AsyncClient) -> None:
    accepted = await client.post(
        "/analyze/segments",
        json={
            "data": {"table": TABLE, "filters": {"tenantId": "t2"}},
            "fields": ["income", "age"],
            "maxClusters": 4,
        },
    )
    assert accepted.status_code == 202, accepted.text
    job = await finished_job(client, accepted.headers["location"])
    assert job["status"] == "completed", job
    assert job["result"]["rowCount"] == 200
    assert job["result"]["imputed"] == {"income": 4}  # every 50th income is null, ids 400..599


@pytest.mark.parametrize(
    "data",
    [
        {"table": f"{TABLE}; drop table x"},
        {"table": f'{TABLE}"; DROP TABLE "{TABLE}'},
        {"table": "ds_ünïcødé"},
        {"table": "t" * 10_000},
        {"table": TABLE, "columns": ['income"; DROP TABLE x; --']},
        {"table": TABLE, "filters": {"1=1) OR (1": "x"}},
        {"table": "pg_catalog.pg_authid"},
    ],
)
async def test_hostile_names_are_422_and_the_table_survives(
    client: httpx.AsyncClient, seeded: str, data: dict[str, Any]
) -> None:
    answer = await client.post("/train/gbm", json={"data": data, "label": "converted"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
    assert any(d["field"].startswith("data.") for d in answer.json()["error"]["details"])
    assert await _table_exists(seeded)


async def test_error_fields_name_the_data_paths_as_the_request_wrote_them(
    client: httpx.AsyncClient, seeded: str
) -> None:
    # The caller's own names stay as written, even one that spells a spec field (`id_field`).
    data = {"table": TABLE, "columns": ["income", "shoe_size"], "filters": {"id_field": 1}}
    answer = await client.post("/train/gbm", json={"data": data, "label": "converted"})
    assert answer.status_code == 422, answer.text
    fields = [d["field"] for d in answer.json()["error"]["details"]]
    assert fields == ["data.columns[1]", "data.filters.id_field"]


async def test_database_down_is_503_and_the_worker_recovers(seeded: str) -> None:
    parts = make_url(seeded)
    proxy = TcpProxy(parts.host or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    url = str(parts.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    body = {
        "data": {"table": TABLE, "columns": ["income", "converted"], "filters": {"tenantId": "t1"}},
        "label": "converted",
    }
    try:
        async for client in _client(url):
            assert (await client.post("/train/gbm", json=body)).status_code == 200
            await proxy.stop()
            down = await client.post("/train/gbm", json=body)
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "DEPENDENCY_UNAVAILABLE"
            health = await client.get("/health")
            assert health.status_code == 503
            assert any(
                d["name"] == "database" and d["status"] == "degraded" for d in health.json()["dependencies"]
            )
            await proxy.start()
            assert (await client.post("/train/gbm", json=body)).status_code == 200
            assert (await client.get("/health")).status_code == 200
    finally:
        await proxy.stop()


def _without(answer: httpx.Response, name: str) -> dict[str, Any]:
    """The error envelope with the table's name and the request id taken out."""
    error = dict(answer.json()["error"])
    error.pop("requestId", None)
    return json.loads(json.dumps(error).replace(repr(name), "<name>"))


@pytest.mark.parametrize("form", ["bare", "qualified"])
async def test_a_table_outside_the_pattern_answers_like_a_missing_one(
    client: httpx.AsyncClient, form: str
) -> None:
    prefix = "public." if form == "qualified" else ""
    outside, missing = f"{prefix}{OUTSIDE}", f"{prefix}ds_missing_{uuid.uuid4().hex[:8]}"
    answers = {}
    for name in (outside, missing):
        data = {"table": name, "filters": {"tenantId": "t1"}}
        answers[name] = await client.post("/train/gbm", json={"data": data, "label": "converted"})
    assert answers[outside].status_code == answers[missing].status_code == 422
    assert _without(answers[outside], outside) == _without(answers[missing], missing)
    assert answers[outside].json()["error"]["details"][0]["field"] == "data.table"


async def test_a_tenant_scoped_table_is_read_only_with_a_tenant_filter(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/train/gbm",
        json={"data": {"table": TABLE, "columns": ["income", "converted"]}, "label": "converted"},
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [d["field"] for d in error["details"]] == ["data.filters.tenantId"]
    assert "tenantId" in error["message"]
    accepted = await client.post(
        "/analyze/segments", json={"data": {"table": TABLE}, "fields": ["income", "age"]}
    )
    assert accepted.status_code == 422, accepted.text  # refused before any job exists


async def test_the_tenant_rule_follows_its_setting(seeded: str) -> None:
    async with app_client(database_url=seeded, require_tenant_filter=False) as client:
        data = {"table": TABLE, "columns": ["income", "age", "converted"]}
        answer = await client.post("/train/gbm", json={"data": data, "label": "converted"})
        assert answer.status_code == 200, answer.text
        metrics = answer.json()["metrics"]
        assert metrics["trainingSamples"] + metrics["validationSamples"] == 600  # both tenants


async def test_the_job_store_table_is_not_readable_whatever_the_pattern(seeded: str) -> None:
    # A postgres job store in the same database: its table exists (the store made it at start).
    async with app_client(
        database_url=seeded, job_store="postgres", job_store_url=seeded, table_pattern=".*"
    ) as client:
        answers = {}
        for name in ("ml_worker_jobs", "public.ml_worker_jobs", "ml_worker_jobz", "public.ml_worker_jobz"):
            body = {"data": {"table": name, "columns": ["id", "result"]}, "label": "id"}
            answers[name] = await client.post("/train/gbm", json=body)
        assert _without(answers["ml_worker_jobs"], "ml_worker_jobs") == _without(
            answers["ml_worker_jobz"], "ml_worker_jobz"
        )
        assert _without(answers["public.ml_worker_jobs"], "public.ml_worker_jobs") == _without(
            answers["public.ml_worker_jobz"], "public.ml_worker_jobz"
        )
        assert answers["ml_worker_jobs"].status_code == 422
        # The pattern opens every other table.
        data = {"table": OUTSIDE, "columns": ["income", "converted"], "filters": {"tenantId": "t1"}}
        assert (await client.post("/train/gbm", json={"data": data, "label": "converted"})).status_code == 200
