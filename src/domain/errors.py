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


class UnreadableInput(ValidationFailed):
    """The request's bytes cannot be read as what they claim to be (JSON that does not parse, an
    Arrow stream or Parquet file that is garbage or cut short): a malformed request rather than
    wrong content, so the entrypoints answer it as such (400, not 422)."""


class InsufficientData(WorkerError):
    """The data is valid but too small or too uniform for the analysis asked."""

    code = "INSUFFICIENT_DATA"


class NotFound(WorkerError):
    code = "NOT_FOUND"


class IllegalTransition(WorkerError):
    """A job state change that the lifecycle forbids (e.g. completing a cancelled job)."""

    code = "ILLEGAL_TRANSITION"


def field_error(field: str, message: str) -> dict[str, Any]:
    """One entry of an error's `details`: which spec field (its dotted path), and what is wrong."""
    return {"field": field, "message": message}


# Marks a detail whose `field` is one of the caller's own columns. It travels inside the detail, so
# it survives the process boundary; the presenters drop it before anything reaches the wire.
COLUMN_DETAIL = "_column"


def column_error(column: str, message: str) -> dict[str, Any]:
    """A detail about a column of the caller's data: named as the caller wrote it, never renamed like
    a spec field, even when a column happens to be called `max_categories`."""
    return {"field": column, "message": message, COLUMN_DETAIL: True}


class InternalFailure(WorkerError):
    """An unexpected failure (a bug). Its message is for the log; callers get a generic one."""

    code = "INTERNAL"
