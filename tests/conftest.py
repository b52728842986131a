"""Shared fixtures: a real uvicorn server of the app, and the servers the integration tests need."""

from __future__ import annotations

import os

# Before anything loads OpenMP, for this process only: the unit tests train LightGBM and fit
# K-Means in-process with the default wait (libgomp spins ~3 ms per idle thread), which starves the
# compute workers and servers the other tests start on the same 2 CPUs of CI. Passive waiting is
# slower when the machine is quiet and safe when it is not. The compute workers do not inherit it:
# worker_main.configure_threads drops it and sets its own bounded spin (tested in
# tests/integration/test_compute_pool.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from entrypoints.settings import Settings
from support.app import make_app, make_settings
from support.eventually import eventually_sync


def _health(base_url: str) -> int | None:
    try:
        return httpx.get(f"{base_url}/health", timeout=2).status_code
    except httpx.HTTPError:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    base_url: str
    settings: Settings


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """The app under uvicorn on a free loopback port, with its process pool, for the whole session."""
    settings = make_settings(
        compute="process", port=free_port(), host="127.0.0.1", queue_limit=64, job_timeout_seconds=120
    )
    config = uvicorn.Config(
        make_app(settings=settings), host="127.0.0.1", port=settings.port, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{settings.port}"
    eventually_sync(
        lambda: _health(base_url),
        lambda status: status == 200,
        timeout=60,
        interval=0.2,
        what="the test server answering /health",
    )
    yield LiveServer(base_url=base_url, settings=settings)
    server.should_exit = True
    thread.join(30)
