"""The one mapping from errors to HTTP answers, and the one error envelope."""

from __future__ import annotations

import math
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from application.errors import Busy
from domain.errors import UnreadableInput, WorkerError
from entrypoints.http.responses import JsonResponse
from entrypoints.http.validation import location, request_location, validation_details
from entrypoints.presenters.jobs import wire_error

log = structlog.get_logger(__name__)


class Unauthorized(WorkerError):
    """The API key is missing or wrong: an HTTP concern, so it lives with the HTTP answers."""

    code = "UNAUTHORIZED"


class BadHeader(UnreadableInput):
    """A request header that is not what the contract allows (Idempotency-Key): a malformed
    request, answered 400 before its body is read."""


HTTP_STATUS: dict[str, int] = {
    "VALIDATION_ERROR": 422,
    "INSUFFICIENT_DATA": 422,
    "RESOURCE_LIMIT": 422,
    "OUT_OF_MEMORY": 422,
    "UNAUTHORIZED": 401,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "NOT_FOUND": 404,
    "PAYLOAD_TOO_LARGE": 413,
    "BUSY": 503,
    "DEPENDENCY_UNAVAILABLE": 503,
    "TIMEOUT": 504,
    "REQUEST_TIMEOUT": 408,  # written by connections.py, which answers before any request exists
    "WORKER_LOST": 500,
    "INTERNAL": 500,
}
_STARLETTE_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def envelope(
    code: str,
    message: str,
    status: int,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    body = {"error": {"code": code, "message": message, "status": status, "details": details or []}}
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        body["error"]["requestId"] = request_id
    return JsonResponse(body, status_code=status, headers=headers)


async def _worker_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, WorkerError)
    # Domain errors name spec fields; the route said how its request spells them (routes.py).
    exc = wire_error(exc, getattr(request.state, "wire_names", None))
    # Bytes that cannot be read at all are a malformed request, as JSON that does not parse is.
    status = 400 if isinstance(exc, UnreadableInput) else HTTP_STATUS.get(exc.code, 500)
    if status >= 500 and exc.code in ("INTERNAL", "WORKER_LOST"):
        log.error("request_failed", code=exc.code, error=exc.message)
    headers = {"Retry-After": str(exc.retry_after_seconds)} if isinstance(exc, Busy) else None
    message = exc.message if exc.code != "INTERNAL" else "internal error; the log has the details"
    return envelope(
        exc.code if exc.code in HTTP_STATUS else "INTERNAL", message, status, exc.details, headers
    )


async def _invalid_body(_: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, ValidationError | RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return envelope(
            "VALIDATION_ERROR",
            "request body is not valid JSON",
            400,
            [{"field": "body", "message": str(errors[0].get("msg"))}],
        )
    details = (
        validation_details(exc)
        if isinstance(exc, ValidationError)
        else [{"field": location(tuple(e["loc"])), "message": e["msg"]} for e in errors[:50]]
    )
    if isinstance(exc, ValidationError) and (not_finite := _non_finite_fields(exc)):
        # NaN and Infinity are not JSON (contract_base.py): the body is refused as a JSON reader
        # that keeps to the standard refuses it, whichever path read it and whatever the field's
        # type (an integer field says "a valid integer", a scalar union "none of the forms").
        return envelope(
            "VALIDATION_ERROR",
            "request body is not valid JSON: NaN, Infinity and numbers beyond the double range "
            "are not JSON numbers; send null for a missing value",
            400,
            [{"field": field, "message": "not a finite JSON number"} for field in not_finite],
        )
    first = details[0] if details else {"field": "body", "message": "invalid"}
    return envelope("VALIDATION_ERROR", f"{first['field']}: {first['message']}", 422, details)


def _non_finite_fields(error: ValidationError) -> list[str]:
    fields = [
        request_location(error, tuple(item["loc"]))
        for item in error.errors(include_url=False)
        if isinstance(item.get("input"), float) and not math.isfinite(item["input"])
    ]
    return list(dict.fromkeys(fields))[:50]


async def _http_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STARLETTE_CODES.get(exc.status_code, "INTERNAL" if exc.status_code >= 500 else "VALIDATION_ERROR")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return envelope(code, str(exc.detail), exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method of the path: Starlette names only the first route that matched it, and a path
    with one route per method (GET and DELETE /status/{job_id}) would send `Allow: GET`."""
    methods: list[str] = []
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods += sorted(set(getattr(route, "methods", None) or ()) - set(methods))
    return methods


async def _unexpected(_: Request, exc: Exception) -> JsonResponse:
    log.exception("unhandled_error", error_type=type(exc).__name__)
    return envelope("INTERNAL", "internal error; the log has the details", 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(WorkerError, _worker_error)
    app.add_exception_handler(ValidationError, _invalid_body)
    app.add_exception_handler(RequestValidationError, _invalid_body)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
