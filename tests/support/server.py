"""The app under a real uvicorn server in a thread, for tests that need real HTTP (raw header
bytes, the production parsers)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import httpx
import uvicorn

from support.app import make_app, make_settings
from support.eventually import eventually_sync


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_health(port: int) -> tuple[int, dict[str, object] | None]:
    """(status, body) of /health on a loopback port; (0, None) while nothing answers there."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, None


def _health(base_url: str) -> int | None:
    try:
        return httpx.get(f"{base_url}/health", timeout=2).status_code
    except httpx.HTTPError:
        return None


@contextmanager
def served(http: Literal["auto", "h11", "httptools"] = "auto", **overrides: Any) -> Iterator[str]:
    """The base URL of the app (test settings plus `overrides`) served on a free loopback port."""
    settings = make_settings(port=free_port(), host="127.0.0.1", **overrides)
    config = uvicorn.Config(
        make_app(settings=settings), host="127.0.0.1", port=settings.port, http=http, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{settings.port}"
    try:
        eventually_sync(
            lambda: _health(base_url), lambda s: s == 200, timeout=60, interval=0.1, what="/health"
        )
        yield base_url
    finally:
        server.should_exit = True
        thread.join(30)
