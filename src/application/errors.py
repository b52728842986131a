"""Errors the ports raise for the infrastructure behind them: a full compute queue, a task that timed
out, was cancelled or lost its process, a server that cannot be reached, more data than a source
serves. Adapters translate their drivers' errors into these, once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domain.errors import InternalFailure, WorkerError


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


class TaskCancelled(WorkerError):
    code = "CANCELLED"


class TaskTimedOut(WorkerError):
    code = "TIMEOUT"


class WorkerLost(WorkerError):
    """The process running a task died before it answered."""

    code = "WORKER_LOST"


class OutOfMemory(WorkerError):
    """The compute process grew past its share of the memory limit and was ended (the watchdog)."""

    code = "OUT_OF_MEMORY"


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
