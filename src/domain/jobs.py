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

    `owner` is the replica that executes the job and `lease_expires_at` the time by which it must
    heartbeat again; a job whose lease ran out belongs to a dead worker.
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

    def with_progress(self, progress: float, message: str) -> Job:
        if self.status is not JobStatus.RUNNING:
            raise IllegalTransition(f"a {self.status.value} job cannot report progress")
        # Progress never moves backwards: a late report from an earlier stage is ignored.
        return replace(self, progress=max(self.progress, min(1.0, max(0.0, progress))), message=message)

    def started(self, now: float, owner: str, lease_expires_at: float) -> Job:
        check_transition(self.status, JobStatus.RUNNING)
        return replace(
            self, status=JobStatus.RUNNING, started_at=now, owner=owner, lease_expires_at=lease_expires_at
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
