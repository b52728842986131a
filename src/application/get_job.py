from __future__ import annotations

from application.ports import JobStore
from domain.errors import NotFound
from domain.jobs import Job


class GetJob:
    def __init__(self, store: JobStore) -> None:
        self._store = store

    async def execute(self, job_id: str) -> Job:
        job = await self._store.get(job_id)
        if job is None:
            raise NotFound(f"no job with id '{job_id}' (unknown, or expired after its retention time)")
        return job
