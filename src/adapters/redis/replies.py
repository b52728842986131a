"""What the Redis job store's script replies and Redis errors mean to its callers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis import exceptions as redis_errors

from application.errors import Busy, DependencyUnavailable
from application.ports import QueueLimits
from domain.errors import IllegalTransition, NotFound
from domain.jobs import JobStatus

# Redis replies that mean the server cannot serve us now, rather than a bug in our command.
_UNAVAILABLE_REPLIES = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "NOREPLICAS", "BUSY")
# How long a caller refused for a full queue should wait: about one job's turnover.
_BUSY_RETRY_SECONDS = 5


def busy(limit: str, held: int, size: int, limits: QueueLimits | None) -> Busy:
    assert limits is not None
    if limit == "jobs":
        return Busy(
            f"the job queue is full: {held} jobs wait already (ML_WORKER_MAX_QUEUED_JOBS is "
            f"{limits.max_queued_jobs})",
            retry_after_seconds=_BUSY_RETRY_SECONDS,
        )
    return Busy(
        f"the job queue holds {held} bytes of input, and this job's {size} would pass "
        f"ML_WORKER_MAX_QUEUED_MB ({limits.max_queued_bytes} bytes)",
        retry_after_seconds=_BUSY_RETRY_SECONDS,
    )


def raise_for(reply: Sequence[Any], job_id: str, target: JobStatus | None) -> None:
    tag = reply[0].decode()
    if tag == "missing":
        raise NotFound(f"job {job_id!r} not found")
    wanted = "" if target is None else f" become {target.value}"
    if tag == "illegal":
        raise IllegalTransition(f"a {reply[1].decode()} job cannot{wanted}")
    if tag == "not_owner":
        raise IllegalTransition(f"a {reply[1].decode()} job of another owner cannot{wanted}")


@asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        raise DependencyUnavailable(f"Redis is unavailable: {exc}") from exc
    except redis_errors.ResponseError as exc:
        if str(exc).startswith(_UNAVAILABLE_REPLIES):
            raise DependencyUnavailable(f"Redis cannot serve the job store: {exc}") from exc
        raise
