"""What the Redis job store's script replies mean to its callers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from application.errors import Busy
from application.ports import QueueDepth, QueueLimits
from domain.errors import IllegalTransition, NotFound
from domain.jobs import JobStatus

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


def refused_early(depth: QueueDepth, size: int, limits: QueueLimits) -> Busy | None:
    """The Busy a create would meet for sure, known before a large payload is uploaded in vain
    (the create script checks again, atomically)."""
    if depth.queued >= limits.max_queued_jobs:
        return busy("jobs", depth.queued, size, limits)
    if limits.max_queued_bytes is not None and depth.payload_bytes + size > limits.max_queued_bytes:
        return busy("bytes", depth.payload_bytes, size, limits)
    return None


def raise_for(reply: Sequence[Any], job_id: str, target: JobStatus | None) -> None:
    tag = reply[0].decode()
    if tag == "missing":
        raise NotFound(f"job {job_id!r} not found")
    wanted = "" if target is None else f" become {target.value}"
    if tag == "illegal":
        raise IllegalTransition(f"a {reply[1].decode()} job cannot{wanted}")
    if tag == "not_owner":
        raise IllegalTransition(f"a {reply[1].decode()} job of another owner cannot{wanted}")
