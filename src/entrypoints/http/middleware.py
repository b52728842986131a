"""Pure ASGI middleware (no per-request task or body buffering): request id, access log, metrics,
body size limit, and the last line of defence that turns any unhandled error into the envelope."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from application.errors import PayloadTooLarge
from entrypoints.http.connections import TIMEOUT_EXTENSION
from entrypoints.http.errors import envelope
from entrypoints.http.metrics import Metrics

log = structlog.get_logger("ml_worker.http")
_MAX_REQUEST_ID = 128


def _route_template(scope: Scope) -> str:
    """The route's path template (`/status/{job_id}`), so metrics do not explode per job id."""
    app = scope.get("app")
    for route in getattr(getattr(app, "router", None), "routes", []):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", scope["path"]))
    return "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")[:_MAX_REQUEST_ID] or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        # The training deadline counts from here (TrainGbmCommand.received_at), on the use case's clock.
        scope.setdefault("state", {})["received_at"] = time.time()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            declared = 0
        try:
            if declared > self.max_body_bytes:
                await self._too_large(send_with_id)
            else:
                await self.app(scope, self._limited(receive), send_with_id)
        except ClientDisconnect:
            # The client went away before its answer (or its body stopped arriving and the server cut
            # it, connections.py): a client's event, counted apart from the server's errors; 499 as
            # nginx labels it.
            if TIMEOUT_EXTENSION in (scope.get("extensions") or {}):
                status = 408  # logged where it was cut
            elif not response_started:
                status = 499
                log.info("client_disconnected", method=scope["method"], path=scope["path"])
        except Exception as exc:  # nothing a client sends may end as a bare 500 or a stack trace
            log.exception("unhandled_error", error_type=type(exc).__name__)
            if not response_started:
                response = envelope("INTERNAL", "internal error; the log has the details", 500)
                await response(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(
                        f"request body exceeds {limit / (1024 * 1024):g} MB (ML_WORKER_MAX_BODY_MB)"
                    )
            return message

        return limited_receive

    async def _too_large(self, send: Send) -> None:
        response = envelope(
            "PAYLOAD_TOO_LARGE",
            f"request body exceeds {self.max_body_bytes / (1024 * 1024):g} MB (ML_WORKER_MAX_BODY_MB)",
            413,
        )

        async def no_body() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        await response({"type": "http"}, no_body, send)
