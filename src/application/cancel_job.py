from __future__ import annotations

from application.ports import Clock, JobScheduler, JobStore
from domain.errors import IllegalTransition, NotFound
from domain.jobs import Job, JobStatus


class CancelJob:
    """Idempotent: cancelling a finished job returns it unchanged."""

    def __init__(self, store: JobStore, jobs: JobScheduler, clock: Clock) -> None:
        self._store = store
        self._jobs = jobs
        self._clock = clock

    async def execute(self, job_id: str) -> Job:
        try:
            job = await self._store.finish(job_id, status=JobStatus.CANCELLED, now=self._clock.now())
        except IllegalTransition:
            current = await self._store.get(job_id)
            if current is None:
                raise NotFound(f"no job with id '{job_id}'") from None
            return current
        except NotFound:
            raise NotFound(
                f"no job with id '{job_id}' (unknown, or expired after its retention time)"
            ) from None
        self._jobs.cancelled(job)
        return job
