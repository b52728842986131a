"""A real uvicorn server of an app (with the service's own connection protocol) on a free loopback
port, in a thread, and raw-socket helpers for the tests that need what httpx will not do: trickle,
stall or abandon a request. (support/server.py serves the app with uvicorn's parsers, for header
bytes.)"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from support.eventually import eventually_sync
from support.server import free_port


@dataclass
class Served:
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self, timeout: float = 30.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


def _health(base_url: str) -> int | None:
    try:
        return httpx.get(f"{base_url}/health", timeout=5).status_code
    except httpx.HTTPError:
        return None


@contextmanager
def serving(app: Any, **config: Any) -> Iterator[Served]:
    """`app` under uvicorn (its lifespan run, uvloop when installed), `config` passed to
    uvicorn.Config (`http=` a protocol class, say); stopped on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", **config)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    served = Served(port)
    try:
        eventually_sync(
            lambda: _health(served.base_url),
            lambda status: status == 200,
            timeout=60,
            interval=0.1,
            what="the test server answering /health",
        )
        yield served
    finally:
        server.should_exit = True
        thread.join(30)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer
