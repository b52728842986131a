"""Connections that cannot pin the server: through a real uvicorn server with the service's protocol
(entrypoints/http/connections.py) and the real app, with deadlines short enough for a test and
waits generous enough for a loaded machine."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from entrypoints.http.connections import ConnectionLimits, GuardedHttpToolsProtocol
from support.app import make_app
from support.eventually import eventually_sync
from support.raw_server import Served, free_port, read_all, serving

pytestmark = pytest.mark.timeout(120)

LIMITS = ConnectionLimits(header_timeout=0.5, body_timeout=0.5, body_min_rate=10_000, max_connections=50)
GENEROUS = 30.0  # seconds a test waits for what the server should do within a second


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with serving(make_app(), http=GuardedHttpToolsProtocol.with_limits(LIMITS)) as served:
        yield served


def trickle(sock: socket.socket, data: bytes, every: float, stop: threading.Event) -> None:
    """Sends `data` one byte per `every` seconds until stopped or cut off."""
    for byte in data:
        if stop.wait(every):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


def answer_while_trickling(served: Served, head: bytes, slow_part: bytes) -> bytes:
    with served.connect(timeout=GENEROUS) as sock:
        sock.sendall(head)
        stop = threading.Event()
        sender = threading.Thread(target=trickle, args=(sock, slow_part, 0.05, stop), daemon=True)
        sender.start()
        try:
            return read_all(sock)
        finally:
            stop.set()
            sender.join()


def envelope_of(answer: bytes, status: int) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert b"connection: close" in head.lower()
    error: dict[str, object] = json.loads(body)["error"]
    assert error["status"] == status
    return error


def requests_counted(served: Served, route: str) -> dict[str, float]:
    """status -> count of ml_worker_http_requests_total for POST `route`."""
    counted: dict[str, float] = {}
    for line in httpx.get(f"{served.base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith("ml_worker_http_requests_total{") and f'route="{route}"' in line:
            status = line.split('status="', 1)[1].split('"', 1)[0]
            counted[status] = float(line.rsplit(" ", 1)[1])
    return counted


def test_a_connection_that_never_sends_a_request_is_closed(server: Served) -> None:
    # uvicorn alone keeps it open for ever; there is nothing to answer, so it is just closed.
    with server.connect(timeout=GENEROUS) as sock:
        assert read_all(sock) == b""


def test_headers_that_trickle_in_are_cut_off_with_a_408_envelope(server: Served) -> None:
    answer = answer_while_trickling(
        server, b"POST /train/gbm HTTP/1.1\r\nHost: test\r\n", b"X-Slow: " + b"a" * 2000
    )
    error = envelope_of(answer, 408)
    assert error["code"] == "REQUEST_TIMEOUT"
    assert "ML_WORKER_HEADER_TIMEOUT_SECONDS" in str(error["message"])


def test_a_body_that_trickles_in_is_cut_off_with_a_408_counted_as_408(server: Served) -> None:
    # One byte per 50 ms is 20 B/s, far below the 10 KB/s minimum: cut once the grace is over,
    # though it never pauses for long.
    head = (
        b"POST /train/gbm HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    answer = answer_while_trickling(server, head, b" " * 100_000)
    assert envelope_of(answer, 408)["code"] == "REQUEST_TIMEOUT"
    counted = eventually_sync(
        lambda: requests_counted(server, "/train/gbm"), lambda c: c.get("408"), what="a 408 counted"
    )
    assert "500" not in counted


def test_a_body_that_stops_arriving_is_cut_off(server: Served) -> None:
    with server.connect(timeout=GENEROUS) as sock:
        sock.sendall(
            b"POST /analyze/segments HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"data": '
        )
        assert envelope_of(read_all(sock), 408)["code"] == "REQUEST_TIMEOUT"


def test_an_aborted_upload_is_a_499_client_event_not_a_500_error(server: Served) -> None:
    with structlog.testing.capture_logs() as logs:
        with server.connect() as sock:
            sock.sendall(
                b"POST /analyze/content HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100000\r\n\r\n{"data": {"rows": ['
            )
            time.sleep(0.1)  # let the app start reading; the test holds either way
        counted = eventually_sync(
            lambda: requests_counted(server, "/analyze/content"), lambda c: c.get("499"), what="a 499"
        )
    assert "500" not in counted
    assert not [entry for entry in logs if entry["log_level"] in ("error", "critical")]
    assert any(entry["event"] == "client_disconnected" for entry in logs)


def test_legitimate_requests_are_not_cut(server: Served) -> None:
    with httpx.Client(base_url=server.base_url, timeout=GENEROUS) as client:
        # A body far larger than the socket buffers, sent at full speed, is read to its end (it is
        # not JSON: the 400 says the app parsed it).
        answer = client.post(
            "/train/gbm", content=b"x" * (20 * 1024 * 1024), headers={"content-type": "application/json"}
        )
        assert answer.status_code == 400, answer.text
        # A kept-alive connection idle longer than the header deadline: the next request's clock
        # starts at its first byte, not at the connection's.
        assert client.get("/health").status_code == 200
        time.sleep(LIMITS.header_timeout * 3)
        assert client.get("/health").status_code == 200


async def _reads_late(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app busy elsewhere for a while before it reads a body, answering the size it read."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] != "/health":
        await asyncio.sleep(LIMITS.body_timeout * 4)
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]}
    )
    await send({"type": "http.response.body", "body": body})


def test_a_body_the_app_is_slow_to_read_is_not_the_clients_fault() -> None:
    # The server stops reading while the app has not taken what arrived: that time is not counted.
    with serving(_reads_late, http=GuardedHttpToolsProtocol.with_limits(LIMITS)) as served:
        size = 8 * 1024 * 1024
        answer = httpx.post(f"{served.base_url}/upload", content=b"y" * size, timeout=GENEROUS)
    assert answer.status_code == 200 and answer.text == str(size)


def test_connections_past_the_cap_are_answered_503_busy_at_once() -> None:
    limits = ConnectionLimits(header_timeout=60, body_timeout=60, body_min_rate=0, max_connections=3)
    with serving(make_app(), http=GuardedHttpToolsProtocol.with_limits(limits)) as served:
        held = [served.connect() for _ in range(3)]
        try:
            eventually_sync(lambda: _refused(served), what="a connection past the cap refused")
        finally:
            for sock in held:
                sock.close()
        # Once the held connections are gone, the server serves again.
        eventually_sync(
            lambda: _status(served), lambda status: status == 200, timeout=GENEROUS, what="/health again"
        )


def _refused(served: Served) -> bool:
    with served.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        answer = read_all(sock)
    if not answer.startswith(b"HTTP/1.1 503 "):
        return False  # the held connections were not all open yet
    error = envelope_of(answer, 503)
    assert error["code"] == "BUSY" and b"retry-after: 1" in answer.lower()
    return True


def _status(served: Served) -> int | None:
    try:
        return httpx.get(f"{served.base_url}/health", timeout=5).status_code
    except httpx.HTTPError:
        return None


def test_serve_raises_its_open_files_limit_to_the_hard_limit() -> None:
    # Started at a container's usual 1,024, 1,100 slow uploads once left no descriptor to accept a
    # /health probe with.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard <= 1024:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        "ML_WORKER_HOST": "127.0.0.1",
        "ML_WORKER_PORT": str(port),
        "ML_WORKER_COMPUTE": "inline",
        "ML_WORKER_JOB_STORE": "memory",
        "ML_WORKER_LOG_LEVEL": "warning",
    }
    env.pop("DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys; from entrypoints.cli import main; sys.exit(main())", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)),
    )
    try:
        eventually_sync(
            lambda: _status(Served(port)), lambda status: status == 200, timeout=GENEROUS * 2, what="serve"
        )
        with open(f"/proc/{server.pid}/limits") as limits:
            [line] = [line for line in limits if line.startswith("Max open files")]
        assert line.split()[3:5] == [str(hard), str(hard)], line
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(GENEROUS)
