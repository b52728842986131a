"""Errors of the domain's own rules: a request or its data that cannot be served as asked.
The errors of infrastructure behind the ports (busy pools, lost workers, unreachable servers) are
the application's (application/errors.py); the entrypoints map every code to an answer once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class WorkerError(Exception):
    """Base of every expected error. `code` is the stable machine-readable code of the envelope."""

    code: str = "INTERNAL"

    def __init__(self, message: str, details: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[dict[str, Any]] = [dict(d) for d in details]


class ValidationFailed(WorkerError):
    """The request is well-formed JSON but its content is wrong (unknown field, bad range...)."""

    code = "VALIDATION_ERROR"


class InvalidData(ValidationFailed):
    """The data itself is wrong (mixed types, nested values, ragged columns): its details name the
    caller's own columns as written, never a spec field, so no presenter renames them."""


class InsufficientData(WorkerError):
    """The data is valid but too small or too uniform for the analysis asked."""

    code = "INSUFFICIENT_DATA"


class NotFound(WorkerError):
    code = "NOT_FOUND"


class IllegalTransition(WorkerError):
    """A job state change that the lifecycle forbids (e.g. completing a cancelled job)."""

    code = "ILLEGAL_TRANSITION"


def field_error(field: str, message: str) -> dict[str, Any]:
    """One entry of an error's `details`: which field, and what is wrong with it."""
    return {"field": field, "message": message}


class InternalFailure(WorkerError):
    """An unexpected failure (a bug). Its message is for the log; callers get a generic one."""

    code = "INTERNAL"
