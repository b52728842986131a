"""The queue's statements for the PostgreSQL job store: claim, requeue, reap, the queue's size and
its bounds.

A claim is one statement:

    UPDATE t SET status = 'running', owner = :o, started_at = :now, lease_expires_at = :lease,
                 attempts = attempts + 1
    WHERE id = (SELECT id FROM t q WHERE status = 'queued' AND format BETWEEN :oldest AND :newest
                [AND tenant not at its cap] ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
      AND status = 'queued'
    RETURNING ...

Why it is exclusive: the inner SELECT locks the row it returns, and a claimer skips rows another has
locked rather than waiting on them. A row whose claim has committed meanwhile is re-checked under the
lock (READ COMMITTED re-evaluates the condition on the newest version) and fails `status = 'queued'`,
so it is skipped too. Two claimers therefore never return the same row, and neither waits for the
other's transaction. The scalar subquery is uncorrelated, so it runs once per statement.

A tenant cap cannot be checked that way: two claimers could each count two running jobs of a tenant
under a cap of 3 and both start a third, since neither sees the other's uncommitted claim. Capped
claims therefore take one transaction-scoped advisory lock per table before the statement: they run
one at a time (a claim is a single short statement), and each counts the running jobs after the
previous claim committed. The lock is released at commit, after the claim is visible. Claims without
a cap, and start_job, do not take it: every replica of a deployment claims with the same cap.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Double, Select, Text, Update, and_, case, func, literal, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.postgres.job_table import ACTIVE, JobTable
from application.errors import Busy, WorkerLost
from application.ports import QueueLimits
from domain.jobs import JOB_FORMAT, OLDEST_CLAIMABLE_FORMAT, JobStatus

QUEUED = JobStatus.QUEUED.value
RUNNING = JobStatus.RUNNING.value
WORKER_LOST_MESSAGE = "the worker running this job stopped sending heartbeats"
# Busy's advice: queue room comes back as jobs are claimed, within seconds.
_RETRY_AFTER_SECONDS = 5


def claim_statement(
    jobs: JobTable, *, owner: str, now: float, lease_seconds: float, tenant_cap: int | None
) -> Update:
    t = jobs.table
    # Aliases: the same table inside its own UPDATE would otherwise be correlated to it.
    q = t.alias("queue_head")
    claimable = [q.c.status == QUEUED, q.c.format.between(OLDEST_CLAIMABLE_FORMAT, JOB_FORMAT)]
    if tenant_cap is not None:
        r = t.alias("tenant_running")
        at_cap = (
            select(r.c.tenant_id)
            .where(r.c.status == RUNNING, r.c.tenant_id.is_not(None))
            .group_by(r.c.tenant_id)
            .having(func.count() >= tenant_cap)
        )
        claimable.append(or_(q.c.tenant_id.is_(None), q.c.tenant_id.not_in(at_cap)))
    head = (
        select(q.c.id)
        .where(*claimable)
        .order_by(q.c.created_at, q.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return (
        update(t)
        .where(t.c.id == head, t.c.status == QUEUED)
        .values(
            status=RUNNING,
            owner=owner,
            started_at=now,
            lease_expires_at=now + lease_seconds,
            attempts=t.c.attempts + 1,
        )
        .returning(*jobs.summary)
    )


def requeue_statement(jobs: JobTable, job_id: str, *, owner: str, refund_attempt: bool) -> Update:
    """Job.requeued for a job running under `owner`: its place by created_at is kept as it was."""
    t = jobs.table
    return (
        update(t)
        .where(t.c.id == job_id, t.c.status == RUNNING, t.c.owner == owner)
        .values(
            status=QUEUED,
            owner=None,
            started_at=None,
            lease_expires_at=None,
            progress=0.0,
            message="",
            attempts=func.greatest(t.c.attempts - 1, 0) if refund_attempt else t.c.attempts,
        )
        .returning(*jobs.summary)
    )


def reap_statement(jobs: JobTable, *, now: float, max_attempts: int, failure_ttl: float) -> Update:
    """Every active job whose lease expired: back to the queue while it may run again, else failed.

    Only a running job this code could claim again is queued: a job of the old layout (or a queued
    one holding a lease, as replicas before the queue wrote them) would wait forever, so it fails.
    """
    t = jobs.table
    s = t.alias("lease_expired")
    # Locked and skipped like claims: two reapers never wait on (or deadlock over) the same rows.
    expired = (
        select(s.c.id)
        .where(s.c.status.in_(ACTIVE), s.c.lease_expires_at < now)
        .with_for_update(skip_locked=True)
    )
    again = and_(
        t.c.status == RUNNING,
        t.c.attempts < max_attempts,
        t.c.format.between(OLDEST_CLAIMABLE_FORMAT, JOB_FORMAT),
    )

    def pick(requeued: Any, failed: Any) -> Any:
        return case((again, requeued), else_=failed)

    return (
        update(t)
        .where(t.c.id.in_(expired), t.c.status.in_(ACTIVE), t.c.lease_expires_at < now)
        .values(
            status=pick(literal(QUEUED, Text), literal(JobStatus.FAILED.value, Text)),
            owner=pick(null(), t.c.owner),
            started_at=pick(null(), t.c.started_at),
            progress=pick(literal(0.0, Double), t.c.progress),
            message=pick(literal("", Text), t.c.message),
            finished_at=pick(null(), literal(now, Double)),
            error_code=pick(null(), literal(WorkerLost.code, Text)),
            error_message=pick(null(), literal(WORKER_LOST_MESSAGE, Text)),
            lease_expires_at=None,
            expires_at=pick(null(), literal(now + failure_ttl, Double)),
            payload_bytes=pick(t.c.payload_bytes, 0),
        )
        .returning(*jobs.summary)
    )


def depth_query(jobs: JobTable) -> Select[Any]:
    """(queued, running, payload bytes of active jobs). Active rows never expire, so none is hidden."""
    t = jobs.table
    return select(
        func.count().filter(t.c.status == QUEUED).label("queued"),
        func.count().filter(t.c.status == RUNNING).label("running"),
        func.coalesce(func.sum(t.c.payload_bytes), 0).label("payload_bytes"),
    ).where(t.c.status.in_(ACTIVE))


async def check_room(conn: AsyncConnection, jobs: JobTable, limits: QueueLimits, size: int) -> None:
    """Busy when the queue holds `limits` already, or would with `size` more payload bytes."""
    depth = (await conn.execute(depth_query(jobs))).one()._mapping
    queued, active_bytes = depth["queued"], depth["payload_bytes"]
    if queued >= limits.max_queued_jobs:
        raise Busy(
            f"the job queue is full: {queued} jobs wait"
            f" (ML_WORKER_MAX_QUEUED_JOBS={limits.max_queued_jobs}); retry later",
            _RETRY_AFTER_SECONDS,
        )
    if limits.max_queued_bytes is not None and active_bytes + size > limits.max_queued_bytes:
        raise Busy(
            f"the inputs of the queued and running jobs ({active_bytes} bytes) and this one"
            f" ({size} bytes) would pass ML_WORKER_MAX_QUEUED_MB"
            f" ({limits.max_queued_bytes} bytes); retry later",
            _RETRY_AFTER_SECONDS,
        )
