"""The composition root's job engine: the job store the settings choose, and the executor over it
(container.py wires them with the rest)."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator

from adapters.compute.cpu_budget import PoolShape
from adapters.job_payload import PickledJobInputs
from adapters.memory.job_store import InMemoryJobStore
from adapters.postgres.job_store import PostgresJobStore
from adapters.redis.job_store import RedisJobStore
from application.errors import DependencyUnavailable
from application.job_executor import JobExecutor, JobSettings
from application.ports import Clock, ComputeRunner, JobObserver, JobStore, QueueLimits
from domain.errors import ValidationFailed
from entrypoints.presenters.jobs import JobResultPresenter
from entrypoints.settings import Settings

log = logging.getLogger(__name__)


def job_store(settings: Settings, clock: Clock) -> JobStore:
    result_ttl, failure_ttl = settings.job_result_ttl_seconds, settings.job_failure_ttl_seconds
    if settings.job_store == "redis":
        return RedisJobStore(
            settings.redis_url,
            key_prefix=settings.redis_key_prefix,
            result_ttl_seconds=result_ttl,
            failure_ttl_seconds=failure_ttl,
            timeout_seconds=settings.store_timeout_seconds,
        )
    if settings.job_store == "postgres":
        url = settings.postgres_job_store_url
        if not url:
            raise ValidationFailed(
                "ML_WORKER_JOB_STORE=postgres needs ML_WORKER_JOB_STORE_URL or DATABASE_URL"
            )
        schema, _, table = settings.job_store_table.rpartition(".")
        return PostgresJobStore(
            url,
            schema=schema or "public",
            table=table,
            clock=clock,
            result_ttl_seconds=result_ttl,
            failure_ttl_seconds=failure_ttl,
            timeout_seconds=settings.store_timeout_seconds,
        )
    return InMemoryJobStore(result_ttl, failure_ttl, clock=clock)


async def started_job_store(store: JobStore) -> AsyncIterator[JobStore]:
    try:
        await store.start()
    except DependencyUnavailable as error:
        # Serve anyway: /health says the store is down (503, not ready) and every store connects
        # (and migrates) on its next call, so the replica is ready as soon as the store is back.
        log.warning("job store unavailable at start: %s", error.message)
    try:
        yield store
    finally:
        await store.close()


def replica_id() -> str:
    """Who runs a job, as `/status` shows it: the host (a pod's name) and the process, then a random
    part, so a restarted process never passes for the one before it."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def job_settings(settings: Settings, shape: PoolShape) -> JobSettings:
    return JobSettings(
        owner=replica_id(),
        lease_seconds=settings.job_lease_seconds,
        reaper_seconds=max(1.0, settings.job_lease_seconds / 3),
        default_timeout_seconds=settings.job_timeout_seconds,
        timeouts={str(job_type): seconds for job_type, seconds in settings.job_timeouts.items()},
        unwritten_limit=settings.unwritten_results,
        max_attempts=settings.job_max_attempts,
        limits=QueueLimits(
            max_queued_jobs=settings.max_queued_jobs,
            max_queued_bytes=int(settings.max_queued_mb * (1 << 20)),
        ),
        # One replica cannot see the cluster's slots: half of its own, which is half the
        # cluster's for one replica, and what an operator raises for more.
        tenant_cap=settings.max_running_per_tenant or max(1, shape.workers // 2),
    )


async def started_executor(
    store: JobStore,
    runner: ComputeRunner,
    clock: Clock,
    settings: Settings,
    shape: PoolShape,
    presenter: JobResultPresenter,
    observer: JobObserver,
) -> AsyncIterator[JobExecutor]:
    codec = PickledJobInputs(
        inline_bytes=int(settings.job_payload_inline_mb * (1 << 20)), directory=settings.job_payload_dir
    )
    executor = JobExecutor(store, runner, clock, job_settings(settings, shape), presenter, codec, observer)
    # The dispatcher starts once the handlers are registered (resolve_services).
    try:
        yield executor
    finally:
        # Before the store and the pool close: running jobs go back to the queue, not lost.
        await executor.close()
