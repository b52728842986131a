"""The job lifecycle: queued -> running -> completed | failed | cancelled, legal moves only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Generic, TypeVar

from domain.errors import IllegalTransition, ValidationFailed

R = TypeVar("R")


@dataclass(frozen=True)
class RequestEcho:
    """The caller's own identifiers, handed back with the result untouched."""

    schema_id: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True)
class EchoedResult(Generic[R]):
    """An analysis result and the identifiers of the request it answers."""

    result: R
    echo: RequestEcho


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


# The layout of a job record and its stored input. A replica claims only queued jobs whose format
# lies between OLDEST_CLAIMABLE_FORMAT and its own JOB_FORMAT, so during a rolling update an old
# replica never claims a job it cannot read, and nobody claims a record written before the queue
# (format 1: such a job was run by the replica that received it, and has no stored input).
JOB_FORMAT = 2
OLDEST_CLAIMABLE_FORMAT = 2

FINAL_STATES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATES = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})

LEGAL_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def check_transition(current: JobStatus, target: JobStatus) -> None:
    if target not in LEGAL_TRANSITIONS[current]:
        raise IllegalTransition(f"a {current.value} job cannot become {target.value}")


@dataclass(frozen=True)
class JobFailure:
    code: str
    message: str


@dataclass(frozen=True)
class Job:
    """One background job. Times are seconds since the epoch (UTC); `result` is JSON-able.

    A new job waits in the store's queue (no owner, no lease) until a replica claims it: the claim
    makes it running, sets `owner` (the replica running this attempt) and `lease_expires_at` (the
    time by which that replica must heartbeat again), and counts one more of its `attempts`. A job
    whose lease ran out belongs to a dead replica: it is queued again, or failed once its attempts
    are spent. `tenant_id` (the request's, when given) bounds how many of a tenant's jobs run at once.
    """

    id: str
    type: str
    status: JobStatus
    created_at: float
    progress: float = 0.0
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    result: Mapping[str, Any] | None = None
    error: JobFailure | None = None
    owner: str | None = None
    lease_expires_at: float | None = None
    attempts: int = 0
    tenant_id: str | None = None

    def with_progress(self, progress: float, message: str) -> Job:
        if self.status is not JobStatus.RUNNING:
            raise IllegalTransition(f"a {self.status.value} job cannot report progress")
        # Progress never moves backwards: a late report from an earlier stage is ignored.
        return replace(self, progress=max(self.progress, min(1.0, max(0.0, progress))), message=message)

    def started(self, now: float, owner: str, lease_expires_at: float) -> Job:
        check_transition(self.status, JobStatus.RUNNING)
        return replace(
            self,
            status=JobStatus.RUNNING,
            started_at=now,
            owner=owner,
            lease_expires_at=lease_expires_at,
            attempts=self.attempts + 1,
        )

    def requeued(self, *, refund_attempt: bool) -> Job:
        """Back in the queue, as if never started (a lost replica's job, or one a shutdown gave
        back: `refund_attempt` then, since the job did not fail)."""
        if self.status is not JobStatus.RUNNING:
            raise IllegalTransition(f"a {self.status.value} job cannot be queued again")
        return replace(
            self,
            status=JobStatus.QUEUED,
            started_at=None,
            owner=None,
            lease_expires_at=None,
            progress=0.0,
            message="",
            attempts=max(0, self.attempts - 1) if refund_attempt else self.attempts,
        )

    def completed(self, now: float, result: Mapping[str, Any]) -> Job:
        check_transition(self.status, JobStatus.COMPLETED)
        return replace(
            self,
            status=JobStatus.COMPLETED,
            finished_at=now,
            progress=1.0,
            result=result,
            lease_expires_at=None,
        )

    def failed(self, now: float, failure: JobFailure) -> Job:
        check_transition(self.status, JobStatus.FAILED)
        return replace(self, status=JobStatus.FAILED, finished_at=now, error=failure, lease_expires_at=None)

    def cancelled(self, now: float) -> Job:
        check_transition(self.status, JobStatus.CANCELLED)
        return replace(self, status=JobStatus.CANCELLED, finished_at=now, lease_expires_at=None)


def check_outcome(status: JobStatus, result: Mapping[str, Any] | None, error: JobFailure | None) -> None:
    """Reject a finish whose arguments contradict its status (shared by every job store): caught here
    it is a bug in the caller, not a job that silently ends without its result."""
    if status not in FINAL_STATES:
        raise ValidationFailed(f"finish needs a final status, not {status.value}")
    if status is JobStatus.COMPLETED and result is None:
        raise ValidationFailed("a completed job needs a result")
    if status is not JobStatus.COMPLETED and result is not None:
        raise ValidationFailed(f"a {status.value} job takes no result")
    if status is JobStatus.FAILED and error is None:
        raise ValidationFailed("a failed job needs an error")
    if status is not JobStatus.FAILED and error is not None:
        raise ValidationFailed(f"a {status.value} job takes no error")
