"""Connections that cannot pin the server: uvicorn's httptools protocol with the deadlines it lacks.

uvicorn only times out idle keep-alive connections: a client that never finishes its headers, or
trickles its body a byte at a time, holds a descriptor (and, for a body, a request task) for as long
as it likes, and enough of them exhaust the process's open files, after which nothing is accepted,
`/health` included. This protocol adds three rules, each armed with one timer per connection (a body
is checked lazily: its timer fires at the earliest moment the rules could be broken and re-arms
itself while the body keeps up, so a fast upload costs no timer operation per chunk):

- the headers of a request arrive within `header_timeout` of the connection (or, on a kept-alive
  connection, of the request's first byte);
- a body never pauses longer than `body_timeout`, and after that grace it arrives at
  `body_min_rate` bytes per second on average, so a trickle is cut however patient it is;
- at most `max_connections` are open at once; beyond that a connection is answered 503 at once and
  closed, so the process keeps descriptors for its stores, its compute pipes and `/health`.

While the server itself is not reading (the app has not consumed what arrived, or the client waits
for `100 Continue`), the body's clocks do not run against the client. A cut request is answered
`408` with the error envelope when no answer has started, else the connection is closed; the app
sees `http.disconnect`, and the cut is an info-level line, not an error.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
import structlog
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from entrypoints.settings import Settings

log = structlog.get_logger("ml_worker.http")

# Descriptors kept back from the connection cap for what the process itself opens.
_RESERVED_FILES = 128
_DEFAULT_MAX_CONNECTIONS = 10_000
_REFUSED_WAIT_S = 1.0  # how long a connection past the cap may take to send the request refused
_LINGER_S = 2.0  # how long an answered, cut-off connection is drained before it is closed
# The scope key a body cut leaves for the middleware, which labels that request 408, not 499.
TIMEOUT_EXTENSION = "ml_worker.request_timeout"


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    body_min_rate: float  # bytes per second; 0: no minimum
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            body_min_rate=settings.body_min_kb_per_second * 1024,
            max_connections=settings.max_connections or default_max_connections(),
        )


def default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _DEFAULT_MAX_CONNECTIONS
    return max(1, min(_DEFAULT_MAX_CONNECTIONS, soft - _RESERVED_FILES))


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Subclasses set `limits`; `ServeProtocol` reads them from the environment's settings."""

    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_start = 0.0
        self._body_progress = 0.0
        self._body_received = 0
        self._refused = False
        self._lingering = False

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
        return type(cls.__name__, (cls,), {"limits": limits})

    # ----------------------------------------------------------------------------- asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            # Answered when its request arrives: closing a socket with the request unread would
            # reset it, and the client would not read the 503.
            log.info("connection_refused", open_connections=len(self.connections), client=self._peer())
            self._refused = True
            self._header_timer = self.loop.call_later(_REFUSED_WAIT_S, self.transport.close)
            return
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_too_slow)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # what a cut-off client still sends is read and dropped
        if self._refused:
            if not self.transport.is_closing():
                self._answer(503, "BUSY", "too many open connections; retry later", b"retry-after: 1\r\n")
        elif not self.transport.is_closing():  # nothing more is parsed once a request is cut off
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    # --------------------------------------------------------------------------- parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # a kept-alive connection's next request: its clock starts now
            self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        # Cancelled again in on_message_complete, at once for a request without a body.
        now = self.loop.time()
        self._body_start = self._body_progress = now
        self._body_received = 0
        self._body_timer = self.loop.call_at(now + self.limits.body_timeout, self._check_body)

    def on_body(self, body: bytes) -> None:
        self._body_received += len(body)
        self._body_progress = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # ---------------------------------------------------------------------------------- deadlines

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        timeout = self.limits.header_timeout
        spoke = self.scope is not None  # the parser saw a first byte
        log.info("request_timeout", phase="headers", seconds=timeout, client=self._peer(), spoke=spoke)
        if spoke and (self.cycle is None or self.cycle.response_complete):
            message = (
                f"the request headers did not arrive within {timeout:g} s (ML_WORKER_HEADER_TIMEOUT_SECONDS)"
            )
            self._answer(408, "REQUEST_TIMEOUT", message)
        else:  # nothing was asked, or an earlier answer is still being written: no place for a 408
            self.transport.close()

    def _body_deadline(self) -> float:
        limits = self.limits
        deadline = self._body_progress + limits.body_timeout
        if limits.body_min_rate > 0:
            owed_by = self._body_start + limits.body_timeout + self._body_received / limits.body_min_rate
            deadline = min(deadline, owed_by)
        return deadline

    def _check_body(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            # The server holds the body back, not the client: both clocks start again.
            self._body_progress = now
            if self.limits.body_min_rate > 0:
                self._body_start = now - self._body_received / self.limits.body_min_rate
        deadline = self._body_deadline()
        if now < deadline:
            self._body_timer = self.loop.call_at(deadline, self._check_body)
            return
        self._body_too_slow(now)

    def _body_too_slow(self, now: float) -> None:
        limits = self.limits
        log.info(
            "request_timeout",
            phase="body",
            received_bytes=self._body_received,
            seconds=round(now - self._body_start, 1),
            client=self._peer(),
        )
        cycle = self.cycle
        if cycle is None or cycle.response_started or self.pipeline:  # no place for a 408
            self.transport.close()
            return
        cycle.scope.setdefault("extensions", {})[TIMEOUT_EXTENSION] = {"phase": "body"}
        rate = f" and at least {limits.body_min_rate / 1024:g} KB/s" if limits.body_min_rate else ""
        self._answer(
            408,
            "REQUEST_TIMEOUT",
            f"the request body stopped arriving: it must keep coming, with pauses under "
            f"{limits.body_timeout:g} s{rate} "
            "(ML_WORKER_BODY_TIMEOUT_SECONDS, ML_WORKER_BODY_MIN_KB_PER_SECOND)",
        )
        # The app's receive() now answers http.disconnect, and whatever it sends is dropped.
        cycle.disconnected = True
        cycle.message_event.set()

    # ------------------------------------------------------------------------------------ helpers

    def _answer(self, status: int, code: str, message: str, extra_headers: bytes = b"") -> None:
        # The envelope of errors.py, written by hand: no request (and no request id) exists here.
        body = orjson.dumps({"error": {"code": code, "message": message, "status": status, "details": []}})
        head = (
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n" % len(body)
            + extra_headers
            + b"\r\n"
        )
        self.transport.write(STATUS_LINE[status] + head + body)
        self._linger()

    def _linger(self) -> None:
        """Closing a socket while the client's bytes sit unread in it makes the kernel reset the
        connection, and a reset can destroy the answer before the client reads it (a trickling
        client is still sending): send the answer with a FIN, drop what still arrives, close after
        a short while or when the client closes."""
        self._cancel_timers()
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._header_timer = self.loop.call_later(_LINGER_S, self.transport.close)

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _peer(self) -> str | None:
        return f"{self.client[0]}:{self.client[1]}" if self.client else None


class ServeProtocol(GuardedHttpToolsProtocol):
    """`ml-worker serve`'s protocol (uvicorn's `http=`, by import path): limits from the environment,
    read at the first connection, after serve raised the open-files limit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "limits" not in ServeProtocol.__dict__:
            ServeProtocol.limits = ConnectionLimits.from_settings(Settings())
        super().__init__(*args, **kwargs)
