"""Errors the domain and the use cases raise; the HTTP entrypoint maps each code to a status once."""

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


class InsufficientData(WorkerError):
    """The data is valid but too small or too uniform for the analysis asked."""

    code = "INSUFFICIENT_DATA"


class NotFound(WorkerError):
    code = "NOT_FOUND"


class Unauthorized(WorkerError):
    code = "UNAUTHORIZED"


class PayloadTooLarge(WorkerError):
    code = "PAYLOAD_TOO_LARGE"


class Busy(WorkerError):
    """All compute slots and the bounded queue are taken: the caller should retry later."""

    code = "BUSY"

    def __init__(self, message: str, retry_after_seconds: int = 5) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class DependencyUnavailable(WorkerError):
    """A server the worker needs (database, Redis) cannot be reached."""

    code = "DEPENDENCY_UNAVAILABLE"


class IllegalTransition(WorkerError):
    """A job state change that the lifecycle forbids (e.g. completing a cancelled job)."""

    code = "ILLEGAL_TRANSITION"


class TaskCancelled(WorkerError):
    code = "CANCELLED"


class TaskTimedOut(WorkerError):
    code = "TIMEOUT"


class WorkerLost(WorkerError):
    """The process running a task died before it answered."""

    code = "WORKER_LOST"


def field_error(field: str, message: str) -> dict[str, Any]:
    """One entry of an error's `details`: which field, and what is wrong with it."""
    return {"field": field, "message": message}


class InternalFailure(WorkerError):
    """An unexpected failure (a bug). Its message is for the log; callers get a generic one."""

    code = "INTERNAL"


def _error_classes() -> dict[str, type[WorkerError]]:
    """Code -> class, breadth first from WorkerError's direct subclasses (in definition order), so a
    code maps to its most general class (ValidationFailed, not one of its subclasses) and INTERNAL
    to InternalFailure rather than the WorkerError base, which shares its default code."""
    classes: dict[str, type[WorkerError]] = {}
    pending: list[type[WorkerError]] = list(WorkerError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        classes.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return classes


def error_from_code(code: str, message: str, details: Sequence[Mapping[str, Any]] = ()) -> WorkerError:
    """Rebuild an error that crossed a process boundary as (code, message, details)."""
    cls = _error_classes().get(code, InternalFailure)
    error = cls.__new__(cls)
    WorkerError.__init__(error, message, details)
    if isinstance(error, Busy):
        error.retry_after_seconds = 5
    return error
