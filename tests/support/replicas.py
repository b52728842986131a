"""Replicas of the service as real processes (`ml-worker serve` of this checkout, each in its own
process group so that a SIGKILL ends the server and its compute pool together, as a pod kill does),
and the client side of a burst of jobs: submit, poll until final, tally. Shared by the end-to-end
replica tests and the benches (bench/job_queue.py, bench/store_outage.py)."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
FINAL = ("completed", "failed", "cancelled")
REDIS_URL = os.environ.get("ML_WORKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get("ML_WORKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def store_namespace(kind: str, name: str) -> str:
    """Where a run's jobs live: a Redis key prefix, or a PostgreSQL `schema.table` of its own."""
    return f"{name.replace('_', '-')}:" if kind == "redis" else f"{name}.jobs"


async def drop_namespace(kind: str, namespace: str) -> None:
    """Remove what a run left in the store: its Redis keys, or its PostgreSQL schema."""
    if kind == "redis":
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"{namespace}*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()  # type: ignore[attr-defined]
        return
    import asyncpg

    conn = await asyncpg.connect(DATABASE_URL.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{namespace.split(".")[0]}" CASCADE')
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    cpu_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sample_cpu(self) -> None:
        try:
            root = psutil.Process(self.process.pid)
            self.cpu_seconds = sum(
                sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)] if p.is_running()
            )
        except psutil.Error:
            pass

    def rss(self) -> int:
        """Resident bytes of the server and its compute processes."""
        root = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])

    def kill(self) -> None:
        self.sample_cpu()
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.sample_cpu()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_replica(name: str, env: dict[str, str], log_dir: Path) -> Replica:
    port = _free_port()
    log = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "serve"],
        # This checkout's code: the venv's editable install may point at another worktree's.
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            **env,
            "ML_WORKER_PORT": str(port),
            "ML_WORKER_HOST": "127.0.0.1",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        # Its own process group: SIGKILL to the group ends the server and its pool, as a pod kill does.
        start_new_session=True,
    )
    return Replica(name, port, process)


async def answered(client: httpx.AsyncClient, replica: Replica, path: str) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        status: int | None = (await client.get(replica.url + path, timeout=30)).status_code
    except httpx.HTTPError:
        status = None
    return status, time.monotonic() - started


async def wait_live(client: httpx.AsyncClient, replica: Replica, path: str, timeout: float = 90) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if (await answered(client, replica, path))[0] == 200:
            return time.monotonic() - started
        if replica.process.poll() is not None:
            raise RuntimeError(f"replica {replica.name} exited with {replica.process.returncode}")
        await asyncio.sleep(0.2)
    raise RuntimeError(f"replica {replica.name}: {path} not 200 within {timeout} s")


async def submit(client: httpx.AsyncClient, replica: Replica, body: dict[str, Any]) -> tuple[int, str | None]:
    """(status, the job's id); for a refusal, (status, None), its error code in `refusals`."""
    response = await client.post(replica.url + "/analyze/segments", json=body, timeout=30)
    if response.status_code == 202:
        return 202, response.json()["jobId"]
    refusals[f"{response.status_code} {response.json().get('error', {}).get('code')}"] += 1
    return response.status_code, None


# Error codes of the refused submissions, for the benches' reports.
refusals: collections.Counter[str] = collections.Counter()


async def outcomes(
    client: httpx.AsyncClient, via: Replica, ids: list[str], bound: float
) -> tuple[dict[str, dict[str, Any]], float]:
    """Poll until every job is final or `bound` seconds pass; the last answer for each job."""
    started = time.monotonic()
    last: dict[str, dict[str, Any]] = {}
    while True:
        for job_id in ids:
            if last.get(job_id, {}).get("status") in FINAL:
                continue
            response = await client.get(f"{via.url}/status/{job_id}", timeout=30)
            last[job_id] = (
                response.json() if response.status_code == 200 else {"status": f"http {response.status_code}"}
            )
        if all(job.get("status") in FINAL for job in last.values()) or time.monotonic() - started > bound:
            return last, time.monotonic() - started
        await asyncio.sleep(0.5)


def tally(jobs: dict[str, dict[str, Any]]) -> str:
    completed = sum(job["status"] == "completed" for job in jobs.values())
    failed = collections.Counter(
        (job.get("error") or {}).get("code", "?") for job in jobs.values() if job["status"] == "failed"
    )
    stuck = sum(job["status"] in ("queued", "running") for job in jobs.values())
    other = collections.Counter(
        job["status"] for job in jobs.values() if job["status"] not in (*FINAL, "queued", "running")
    )
    text = f"{len(jobs)} jobs: completed {completed}, failed {dict(failed) or 0}, stuck {stuck}"
    return text + (f", other {dict(other)}" if other else "")
