"""What PostgreSQL's and the drivers' errors mean for the ports: the one place both PostgreSQL
adapters (the job store on asyncpg, the table source on ADBC) turn a driver error into
DEPENDENCY_UNAVAILABLE, VALIDATION_ERROR or a genuine bug."""

from __future__ import annotations

import adbc_driver_manager as adbc
import asyncpg
from sqlalchemy import exc as sa_exc

from application.errors import DependencyUnavailable
from domain.errors import ValidationFailed, WorkerError, field_error

# SQLSTATE classes that mean "the server cannot serve us" rather than "this request is wrong":
# connection exception, invalid authorization, insufficient resources, operator intervention
# (shutdown, cannot connect now), unknown database.
UNAVAILABLE_CLASSES = ("08", "28", "53", "57", "3D")
QUERY_CANCELED = "57014"
# A driver message echoed to a client of the table source is cut to this length.
_SHOWN_REASON_CHARS = 200
# ADBC statuses for a connection that failed or could not be made (a server-side error has a SQLSTATE).
_ADBC_UNAVAILABLE = (adbc.AdbcStatusCode.IO, adbc.AdbcStatusCode.TIMEOUT, adbc.AdbcStatusCode.UNAUTHENTICATED)
# The details' keys are bytes in the driver 1.13 (typed as str in its stubs): both are accepted.
_ADBC_PRIMARY_MESSAGE: tuple[object, ...] = (b"PG_DIAG_MESSAGE_PRIMARY", "PG_DIAG_MESSAGE_PRIMARY")


def sqlstate(exc: BaseException) -> str:
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return ""


def reason(exc: BaseException) -> str:
    if isinstance(exc, adbc.Error):
        # ADBC's text carries the whole statement; the server's own message is in the details.
        for key, value in exc.details or ():
            if key in _ADBC_PRIMARY_MESSAGE and value:
                return value.decode("utf-8", "replace").strip()
    orig = getattr(exc, "orig", None)
    cause = orig if orig is not None else exc
    said = str(cause).strip()
    # Timeouts and refused connections may carry no message; the exception's name is the reason then.
    return said.splitlines()[0] if said else type(cause).__name__


def shown_reason(exc: BaseException) -> str:
    return reason(exc)[:_SHOWN_REASON_CHARS]


def unavailable(exc: BaseException) -> bool:
    """The table source's rule: the server or the connection failed, not the statement."""
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, adbc.Error) and exc.status_code in _ADBC_UNAVAILABLE:
        return True
    if isinstance(exc, sa_exc.DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, sa_exc.InterfaceError | sa_exc.OperationalError)
    ):
        return True
    state = sqlstate(exc)
    return state.startswith(UNAVAILABLE_CLASSES) and state != QUERY_CANCELED


def table_read_error(exc: BaseException, *, filtered: bool, statement_timeout_ms: int) -> WorkerError | None:
    """The port error for a driver error during a table read, or None for a genuine bug (left to
    become a 500). Fields are the DataSpec's paths (`data.table`, `data.filters`)."""
    state = sqlstate(exc)
    if state == QUERY_CANCELED:
        return DependencyUnavailable(
            f"the database did not answer within the statement timeout ({statement_timeout_ms} ms)"
        )
    if unavailable(exc):
        return DependencyUnavailable(f"PostgreSQL is unavailable: {shown_reason(exc)}")
    said = shown_reason(exc)
    if state.startswith("22"):
        # Mostly a filter value its column's type refuses; without filters, a value the table
        # (a view) cannot produce.
        field = "data.filters" if filtered else "data.table"
        return ValidationFailed(f"the database refused a value: {said}", [field_error(field, said)])
    if state == "42883":
        return ValidationFailed(
            f"a filter column cannot be compared for equality: {said}", [field_error("data.filters", said)]
        )
    if state in ("42501", "25006", "42P01", "42703"):
        # No SELECT privilege, a view that tries to write, or a table dropped under our feet.
        return ValidationFailed(f"the table cannot be read: {said}", [field_error("data.table", said)])
    return None


def job_store_error(exc: BaseException) -> WorkerError | None:
    """The port error for a driver error in the job store, or None for anything else (re-raised)."""
    if isinstance(exc, OSError | TimeoutError | sa_exc.TimeoutError):
        return DependencyUnavailable(f"PostgreSQL is unavailable: {reason(exc)}")
    if not isinstance(exc, sa_exc.DBAPIError | asyncpg.PostgresError | asyncpg.InterfaceError):
        return None
    state = sqlstate(exc)
    invalidated = isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    if (
        invalidated
        or isinstance(exc, sa_exc.InterfaceError | asyncpg.InterfaceError)
        or state.startswith(UNAVAILABLE_CLASSES)
    ):
        return DependencyUnavailable(f"PostgreSQL is unavailable: {reason(exc)}")
    if state.startswith("22"):
        # Class 22 is a value PostgreSQL cannot store (e.g. U+0000 in text or JSONB).
        return ValidationFailed(f"the job store cannot keep this value: {reason(exc)}")
    return None
