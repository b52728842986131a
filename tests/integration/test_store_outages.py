"""Job store outages lose nothing (real Redis and PostgreSQL, each behind a TCP proxy the tests stop,
start and pause):

- a job running through an outage, shorter or longer than its lease, completes; one that finished
  during the outage is completed once the store is back; one queued before the outage starts during
  it and completes; the job of a replica that really died is still failed WORKER_LOST;
- a replica started while its store is down serves (`/health` 503 naming the job store, `/health/live`
  200) and is ready as soon as the store is back, without a restart;
- a store that accepts connections and never answers costs a request its timeout (503
  DEPENDENCY_UNAVAILABLE), not a hang.

Leases, heartbeats and store timeouts are short (settings), so each case takes a few seconds.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url
from tcp_proxy import TcpProxy

from adapters.compute.inline_runner import InlineRunner
from adapters.compute.process_pool import ProcessPoolRunner
from adapters.job_payload import PickledJobInputs
from adapters.postgres.job_store import PostgresJobStore
from adapters.redis.job_store import RedisJobStore
from adapters.system_clock import SystemClock
from application.job_executor import JobExecutor, JobSettings
from application.ports import JobStore
from domain.jobs import Job, JobStatus
from support import tasks
from support.app import make_app, started
from support.eventually import eventually
from support.http import error_of, finished_job
from support.jobs import submit_task, task_handlers
from support.presenter import DocumentPresenter
from support.replicas import drop_namespace, store_namespace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REDIS_URL = os.environ.get("ML_WORKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("ML_WORKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
# Short, but not so short that a loaded CI machine turns a slow answer into an outage.
LEASE = 2.0
TIMEOUT = 1.0
ENGINE = JobSettings(
    lease_seconds=LEASE, heartbeat_seconds=0.05, reaper_seconds=0.2, default_timeout_seconds=60
)


@dataclass
class Proxied:
    """A real store server behind a proxy, with this test's own keys or table."""

    kind: str
    proxy: TcpProxy
    url: str  # the server's URL through the proxy
    namespace: str  # Redis key prefix, or PostgreSQL schema.table
    stores: list[JobStore] = field(default_factory=list)

    async def store(self) -> JobStore:
        """Another store instance over the same data: another replica."""
        store: JobStore
        if self.kind == "redis":
            store = RedisJobStore(self.url, key_prefix=self.namespace, timeout_seconds=TIMEOUT)
        else:
            schema, table = self.namespace.split(".")
            store = PostgresJobStore(self.url, schema=schema, table=table, timeout_seconds=TIMEOUT)
        await store.start()
        self.stores.append(store)
        return store

    def app_settings(self) -> dict[str, Any]:
        common = {"store_timeout_seconds": TIMEOUT, "job_lease_seconds": LEASE * 2}
        if self.kind == "redis":
            return {"job_store": "redis", "redis_url": self.url, "redis_key_prefix": self.namespace, **common}
        return {
            "job_store": "postgres",
            "job_store_url": self.url,
            "job_store_table": self.namespace,
            **common,
        }


async def _reachable(kind: str) -> bool:
    try:
        if kind == "redis":
            client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
            try:
                await client.ping()
            finally:
                await client.aclose()  # type: ignore[attr-defined]
        else:
            conn = await asyncpg.connect(DATABASE_URL, timeout=2)
            await conn.close()
    except (OSError, TimeoutError, asyncpg.PostgresError, aioredis.RedisError):
        return False
    return True


@pytest.fixture(params=["redis", "postgres"])
async def proxied(request: pytest.FixtureRequest) -> AsyncIterator[Proxied]:
    kind: str = request.param
    if not await _reachable(kind):
        if os.environ.get("ML_WORKER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{kind} is unreachable (ML_WORKER_REQUIRE_SERVICES=1)")
        pytest.skip(f"{kind} is unreachable")
    server = make_url(REDIS_URL if kind == "redis" else DATABASE_URL)
    proxy = TcpProxy(server.host or "127.0.0.1", server.port or (6379 if kind == "redis" else 5432))
    await proxy.start()
    through = server.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    run = uuid.uuid4().hex[:10]
    namespace = store_namespace(kind, f"mlw_outage_{run}")
    proxied = Proxied(kind, proxy, through, namespace)
    try:
        yield proxied
    finally:
        for store in proxied.stores:
            await store.close()
        await proxy.stop()
        await drop_namespace(kind, namespace)


async def _job(store: JobStore, job_id: str, until: Callable[[Job], bool], what: str) -> Job:
    async def look() -> Job | None:
        return await store.get(job_id)

    found: Job = await eventually(look, lambda job: job is not None and until(job), timeout=30, what=what)
    return found


# ------------------------------------------------------------------------------- the job engine


@pytest.mark.parametrize("outage_seconds", [LEASE / 2, LEASE * 2], ids=["shorter-than-the-lease", "longer"])
async def test_a_store_outage_loses_no_job(proxied: Proxied, outage_seconds: float, tmp_path: Path) -> None:
    store_a, store_b = await proxied.store(), await proxied.store()
    runner = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=4)
    await runner.start()
    replica_a = task_handlers(
        JobExecutor(store_a, runner, SystemClock(), ENGINE, DocumentPresenter(), PickledJobInputs())
    )
    # Another replica sharing the store, with no free slot of its own: its reaper is what could
    # take A's jobs.
    busy = InlineRunner()
    busy.reserve()
    replica_b = task_handlers(
        JobExecutor(store_b, busy, SystemClock(), ENGINE, DocumentPresenter(), PickledJobInputs())
    )
    now = time.time()
    orphan = Job(
        id=f"orphan-{uuid.uuid4().hex}", type="segmentation", status=JobStatus.QUEUED, created_at=now
    )
    await store_b.create(orphan)
    # A job on its last attempt, whose replica died: failed once its lease is judged.
    for attempt in range(ENGINE.max_attempts):
        if attempt:
            await store_b.requeue(orphan.id, owner="replica-that-died", refund_attempt=False)
        await store_b.start_job(orphan.id, owner="replica-that-died", now=now, lease_seconds=LEASE)
    await replica_a.start()
    await replica_b.start()
    gates = [tmp_path / "first", tmp_path / "second"]
    try:
        first = await submit_task(replica_a, "segmentation", tasks.gated, str(gates[0]), 1)
        second = await submit_task(replica_a, "segmentation", tasks.gated, str(gates[1]), 2)
        await _job(store_b, first.id, lambda j: j.status is JobStatus.RUNNING, "the first job running")
        assert (await store_b.get(second.id)).status is JobStatus.QUEUED  # type: ignore[union-attr]

        await proxied.proxy.stop()
        down_at = time.monotonic()
        gates[0].touch()
        # The first job finishes while the store is down; nobody can claim the second meanwhile.
        await eventually(lambda: replica_a.unwritten == 1, timeout=20, what="the first job's outcome held")
        await asyncio.sleep(max(0.0, outage_seconds - (time.monotonic() - down_at)))
        await proxied.proxy.start()

        done = await _job(store_b, first.id, lambda j: j.status.is_final, "the first job's outcome")
        assert done.status is JobStatus.COMPLETED, done.error
        assert done.result == {"value": 1, "squares": [1]}
        running = await _job(
            store_b, second.id, lambda j: j.status is not JobStatus.QUEUED, "the second job claimed"
        )
        assert running.status is JobStatus.RUNNING and running.owner == replica_a.owner
        # Past a lease after the store is back, both reapers have made trusted passes.
        await asyncio.sleep(LEASE + 3 * ENGINE.reaper_seconds)
        assert (await store_b.get(second.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]
        gates[1].touch()
        finished = await _job(store_b, second.id, lambda j: j.status.is_final, "the second job's outcome")
        assert finished.status is JobStatus.COMPLETED, finished.error
        assert finished.result == {"value": 2, "squares": [4]}
        # A replica that really stopped heartbeating still loses its job (on its last attempt).
        lost = await _job(store_b, orphan.id, lambda j: j.status.is_final, "the dead replica's job reaped")
        assert lost.status is JobStatus.FAILED and lost.error is not None
        assert (lost.error.code, lost.attempts) == ("WORKER_LOST", ENGINE.max_attempts)
    finally:
        await replica_a.close()
        await replica_b.close()
        await runner.close()


# ------------------------------------------------------------------------------- the service

SEGMENTS = {
    "data": {"columns": {"x": [float(i % 9) for i in range(90)], "y": [float(i % 5) for i in range(90)]}},
    "maxClusters": 3,
}


async def test_a_replica_started_while_its_store_is_down_serves_once_it_is_back(proxied: Proxied) -> None:
    await proxied.proxy.stop()
    async with started(make_app(**proxied.app_settings())) as client:
        health = await client.get("/health")
        assert health.status_code == 503, health.text
        assert health.json()["status"] == "degraded"
        [store] = [d for d in health.json()["dependencies"] if d["name"] == "jobStore"]
        assert store["status"] == "degraded" and store["reason"]
        live = await client.get("/health/live")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        error_of(await client.post("/analyze/segments", json=SEGMENTS), 503, "DEPENDENCY_UNAVAILABLE")
        error_of(await client.get("/status/some-job"), 503, "DEPENDENCY_UNAVAILABLE")

        await proxied.proxy.start()

        async def health_status() -> int:
            return (await client.get("/health")).status_code

        await eventually(health_status, lambda status: status == 200, timeout=20, what="/health ready")
        accepted = await client.post("/analyze/segments", json=SEGMENTS)
        assert accepted.status_code == 202, accepted.text
        job = await finished_job(client, accepted.headers["location"])
        assert job["status"] == "completed", job


async def test_a_silent_store_is_503_within_its_timeout_and_the_replica_stays_live(proxied: Proxied) -> None:
    async with started(make_app(**proxied.app_settings())) as client:
        accepted = await client.post("/analyze/segments", json=SEGMENTS)
        assert accepted.status_code == 202, accepted.text
        job = await finished_job(client, accepted.headers["location"])
        proxied.proxy.pause()
        try:
            # A hang guard, not a measurement: the drivers' own timeouts (30 s) would trip it.
            async with asyncio.timeout(8 * TIMEOUT + 5):
                error_of(await client.post("/analyze/segments", json=SEGMENTS), 503, "DEPENDENCY_UNAVAILABLE")
                error_of(await client.get(f"/status/{job['jobId']}"), 503, "DEPENDENCY_UNAVAILABLE")
                health = await client.get("/health")
                live = await client.get("/health/live")
        finally:
            proxied.proxy.resume()
        assert health.status_code == 503
        [store] = [d for d in health.json()["dependencies"] if d["name"] == "jobStore"]
        assert store["status"] == "degraded" and store["reason"]
        assert live.status_code == 200

        async def status() -> httpx.Response:
            return await client.get(f"/status/{job['jobId']}")

        answered = await eventually(status, lambda r: r.status_code == 200, timeout=20, what="/status again")
        assert answered.json()["status"] == "completed"
