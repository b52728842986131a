"""The JobStore contract (application.ports.JobStore), run against every adapter.

Times come from a fake clock so nothing waits, except native expiry (Redis key TTLs), which needs
a short real sleep.
"""

from __future__ import annotations

import asyncio
import functools
import random
from typing import Any

import orjson
import pytest

from application.ports import JobStore
from domain.errors import IllegalTransition, NotFound, ValidationFailed
from domain.jobs import Job, JobFailure, JobStatus

from .job_store_harness import REDIS_REAP_BATCH, StoreHarness

OWNER = "replica-a"
UNICODE = (
    "Ünïcödé ✓ 日本語 한국어 עברית العربية 🚀 👩\u200d👩\u200d👧 e\u0301"
    " \U0001d518\U0001d52b\U0001d526 \u200b\"quoted\" \\ 'x'"
)


def queued(job_id: str, now: float, *, job_type: str = "segmentation") -> Job:
    # A new job waits in the queue: nobody owns it yet, and it holds no lease.
    return Job(id=job_id, type=job_type, status=JobStatus.QUEUED, created_at=now)


async def stored(store: JobStore, job_id: str) -> Job:
    job = await store.get(job_id)
    assert job is not None, f"job {job_id!r} is missing"
    return job


async def running(store: JobStore, job_id: str, now: float, *, lease: float = 30.0) -> Job:
    await store.create(queued(job_id, now))
    return await store.start_job(job_id, owner=OWNER, now=now, lease_seconds=lease)


# --- lifecycle ---------------------------------------------------------------------------------


async def test_a_created_job_reads_back_exactly(store: JobStore, harness: StoreHarness) -> None:
    job = queued("job-1", harness.clock.now())
    await store.create(job)
    assert await store.get("job-1") == job


async def test_an_unknown_id_is_none(store: JobStore) -> None:
    assert await store.get("no-such-job") is None


async def test_lifecycle_to_completed(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    await store.create(queued("job-1", t0))

    started = await store.start_job("job-1", owner="replica-b", now=t0 + 1, lease_seconds=30)
    assert started.status is JobStatus.RUNNING
    assert (started.started_at, started.owner, started.lease_expires_at) == (t0 + 1, "replica-b", t0 + 1 + 30)

    first = await store.heartbeat(
        "job-1", owner="replica-b", now=t0 + 2, lease_seconds=30, progress=0.4, message="fitting k=3"
    )
    assert (first.progress, first.message, first.lease_expires_at) == (0.4, "fitting k=3", t0 + 2 + 30)
    # A late report from an earlier stage: the message is taken, progress does not go back.
    late = await store.heartbeat(
        "job-1", owner="replica-b", now=t0 + 3, lease_seconds=30, progress=0.2, message="sampling"
    )
    assert (late.progress, late.message) == (0.4, "sampling")
    # Progress only: the message is kept.
    only = await store.heartbeat("job-1", owner="replica-b", now=t0 + 4, lease_seconds=30, progress=0.7)
    assert (only.progress, only.message) == (0.7, "sampling")
    assert await store.get("job-1") == only

    result = {"k": 3, "silhouette": 0.8123456789012345, "segments": [{"id": 0, "share": 0.25}]}
    done = await store.finish("job-1", status=JobStatus.COMPLETED, now=t0 + 5, result=result)
    assert done.status is JobStatus.COMPLETED
    assert (done.progress, done.finished_at, done.lease_expires_at) == (1.0, t0 + 5, None)
    assert done.result == result
    assert done.error is None
    assert (done.started_at, done.owner, done.message) == (t0 + 1, "replica-b", "sampling")
    assert await store.get("job-1") == done


async def test_progress_is_clamped_to_0_1(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    await running(store, "job-1", t0)
    assert (
        await store.heartbeat("job-1", owner=OWNER, now=t0, lease_seconds=30, progress=-3)
    ).progress == 0.0
    assert (await store.heartbeat("job-1", owner=OWNER, now=t0, lease_seconds=30, progress=7)).progress == 1.0


async def test_lifecycle_to_failed(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    await running(store, "job-1", t0)
    await store.heartbeat("job-1", owner=OWNER, now=t0 + 1, lease_seconds=30, progress=0.3, message="x")
    failure = JobFailure("INSUFFICIENT_DATA", "fewer distinct rows than k")
    failed = await store.finish("job-1", status=JobStatus.FAILED, now=t0 + 2, error=failure)
    assert (failed.status, failed.error, failed.result) == (JobStatus.FAILED, failure, None)
    assert (failed.finished_at, failed.lease_expires_at, failed.progress) == (t0 + 2, None, 0.3)
    assert await store.get("job-1") == failed


async def test_cancel_a_queued_and_a_running_job(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    await store.create(queued("queued-1", t0))
    await running(store, "running-1", t0)
    for job_id in ("queued-1", "running-1"):
        cancelled = await store.finish(job_id, status=JobStatus.CANCELLED, now=t0 + 1)
        assert (cancelled.status, cancelled.finished_at, cancelled.lease_expires_at) == (
            JobStatus.CANCELLED,
            t0 + 1,
            None,
        )
        assert (cancelled.result, cancelled.error) == (None, None)
        assert await store.get(job_id) == cancelled
    assert (await stored(store, "queued-1")).started_at is None


async def test_a_queued_job_can_fail_without_starting(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    await store.create(queued("job-1", t0))
    failed = await store.finish("job-1", status=JobStatus.FAILED, now=t0, error=JobFailure("TIMEOUT", "late"))
    assert failed.status is JobStatus.FAILED


async def test_heartbeat_of_a_queued_job_changes_nothing(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    created = await store.create(queued("job-1", t0))
    job = await store.heartbeat("job-1", owner=OWNER, now=t0 + 5, lease_seconds=10, progress=0.5, message="m")
    assert job == created
    assert (job.status, job.lease_expires_at, job.progress, job.message) == (JobStatus.QUEUED, None, 0.0, "")


async def test_a_late_heartbeat_does_not_shorten_the_lease(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    await running(store, "job-1", t0, lease=100)
    job = await store.heartbeat("job-1", owner=OWNER, now=t0 + 1, lease_seconds=10)
    assert job.lease_expires_at == t0 + 100


async def test_heartbeat_of_a_finished_job_returns_it_unchanged(
    store: JobStore, harness: StoreHarness
) -> None:
    t0 = harness.clock.now()
    await running(store, "job-1", t0)
    cancelled = await store.finish("job-1", status=JobStatus.CANCELLED, now=t0 + 1)
    seen = await store.heartbeat(
        "job-1", owner=OWNER, now=t0 + 2, lease_seconds=30, progress=0.9, message="m"
    )
    # The worker learns it was cancelled, and its report changes nothing.
    assert seen == cancelled
    assert await store.get("job-1") == cancelled


# --- illegal transitions and bad calls ---------------------------------------------------------


async def test_completing_a_cancelled_job_is_illegal_and_keeps_it_cancelled(
    store: JobStore, harness: StoreHarness
) -> None:
    t0 = harness.clock.now()
    await running(store, "job-1", t0)
    cancelled = await store.finish("job-1", status=JobStatus.CANCELLED, now=t0 + 1)
    with pytest.raises(IllegalTransition):
        await store.finish("job-1", status=JobStatus.COMPLETED, now=t0 + 2, result={"late": True})
    with pytest.raises(IllegalTransition):
        await store.finish("job-1", status=JobStatus.FAILED, now=t0 + 2, error=JobFailure("X", "y"))
    with pytest.raises(IllegalTransition):
        await store.finish("job-1", status=JobStatus.CANCELLED, now=t0 + 3)
    assert await store.get("job-1") == cancelled


async def test_starting_a_job_that_is_not_queued_is_illegal(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    started = await running(store, "job-1", t0)
    with pytest.raises(IllegalTransition):
        await store.start_job("job-1", owner="replica-b", now=t0 + 1, lease_seconds=30)
    assert await store.get("job-1") == started

    await store.create(queued("job-2", t0))
    await store.finish("job-2", status=JobStatus.CANCELLED, now=t0)
    with pytest.raises(IllegalTransition):
        await store.start_job("job-2", owner=OWNER, now=t0 + 1, lease_seconds=30)
    assert (await stored(store, "job-2")).status is JobStatus.CANCELLED


async def test_operations_on_an_unknown_id_raise_not_found(store: JobStore, harness: StoreHarness) -> None:
    now = harness.clock.now()
    with pytest.raises(NotFound):
        await store.heartbeat("ghost", owner=OWNER, now=now, lease_seconds=30, progress=0.5)
    with pytest.raises(NotFound):
        await store.start_job("ghost", owner=OWNER, now=now, lease_seconds=30)
    with pytest.raises(NotFound):
        await store.finish("ghost", status=JobStatus.CANCELLED, now=now)
    assert await store.get("ghost") is None


async def test_a_duplicate_id_is_refused_and_the_original_kept(
    store: JobStore, harness: StoreHarness
) -> None:
    t0 = harness.clock.now()
    original = await running(store, "job-1", t0)
    with pytest.raises(ValidationFailed):
        await store.create(queued("job-1", t0 + 1, job_type="content"))
    assert await store.get("job-1") == original


async def test_finish_arguments_must_match_the_status(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    job = await running(store, "job-1", t0)
    bad_calls: list[dict[str, Any]] = [
        {"status": JobStatus.COMPLETED},
        {"status": JobStatus.FAILED},
        {"status": JobStatus.RUNNING},
        {"status": JobStatus.CANCELLED, "result": {"a": 1}},
        {"status": JobStatus.COMPLETED, "result": {"a": 1}, "error": JobFailure("X", "y")},
    ]
    for kwargs in bad_calls:
        with pytest.raises(ValidationFailed):
            await store.finish("job-1", now=t0 + 1, **kwargs)
    assert await store.get("job-1") == job


async def test_a_new_job_must_be_queued(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    job = Job(id="job-1", type="segmentation", status=JobStatus.RUNNING, created_at=t0)
    with pytest.raises(ValidationFailed):
        await store.create(job)
    assert await store.get("job-1") is None


async def test_a_result_that_is_not_json_is_refused(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    await running(store, "job-1", t0)
    with pytest.raises(ValidationFailed):
        await store.finish("job-1", status=JobStatus.COMPLETED, now=t0, result={"a": {1, 2}})
    assert (await stored(store, "job-1")).status is JobStatus.RUNNING


# --- races ---------------------------------------------------------------------------------------


async def test_50_concurrent_heartbeats_keep_the_highest_progress_and_lease(
    store: JobStore, harness: StoreHarness
) -> None:
    t0 = harness.clock.now()
    await running(store, "job-1", t0)
    reports = [(i, (i + 1) / 100) for i in range(50)]
    random.Random(3).shuffle(reports)
    seen = await asyncio.gather(
        *(
            store.heartbeat(
                "job-1", owner=OWNER, now=t0 + i, lease_seconds=30, progress=p, message=f"step {i}"
            )
            for i, p in reports
        )
    )
    for job, (_, p) in zip(seen, reports, strict=True):
        assert job.status is JobStatus.RUNNING
        assert job.progress >= p
    final = await store.get("job-1")
    assert final is not None
    assert final.progress == 0.5
    assert final.lease_expires_at == t0 + 49 + 30
    assert final.message in {f"step {i}" for i in range(50)}


async def test_cancel_racing_complete_ends_in_exactly_one_final_state(
    store: JobStore, harness: StoreHarness
) -> None:
    t0 = harness.clock.now()
    winners: set[JobStatus] = set()
    for round_ in range(30):
        job_id = f"race-{round_}"
        await running(store, job_id, t0)
        racers = [
            store.finish(job_id, status=JobStatus.CANCELLED, now=t0 + 1),
            store.finish(job_id, status=JobStatus.COMPLETED, now=t0 + 1, result={"round": round_}),
            store.finish(job_id, status=JobStatus.FAILED, now=t0 + 1, error=JobFailure("TIMEOUT", "slow")),
        ]
        outcomes = await asyncio.gather(*(racers if round_ % 2 else racers[::-1]), return_exceptions=True)
        finished = [o for o in outcomes if isinstance(o, Job)]
        refused = [o for o in outcomes if not isinstance(o, Job)]
        assert len(finished) == 1, outcomes
        assert len(refused) == 2 and all(isinstance(o, IllegalTransition) for o in refused), outcomes
        winner = finished[0]
        kept = await store.get(job_id)
        assert kept == winner
        winners.add(winner.status)
        # The final state is whole: a completion's result never sits on a cancelled job, etc.
        assert (winner.result is not None) == (winner.status is JobStatus.COMPLETED)
        assert (winner.error is not None) == (winner.status is JobStatus.FAILED)
    assert winners <= {JobStatus.CANCELLED, JobStatus.COMPLETED, JobStatus.FAILED}


async def test_concurrent_starts_of_one_job_admit_exactly_one(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    await store.create(queued("job-1", t0))
    outcomes = await asyncio.gather(
        *(store.start_job("job-1", owner=f"replica-{i}", now=t0, lease_seconds=30) for i in range(10)),
        return_exceptions=True,
    )
    started = [o for o in outcomes if isinstance(o, Job)]
    assert len(started) == 1
    assert all(isinstance(o, IllegalTransition) for o in outcomes if not isinstance(o, Job))
    assert (await stored(store, "job-1")).owner == started[0].owner


async def test_100_concurrent_submissions_are_all_readable(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    jobs = [queued(f"bulk-{i}", t0 + i / 1000) for i in range(100)]
    await asyncio.gather(*(store.create(job) for job in jobs))
    assert await asyncio.gather(*(store.get(job.id) for job in jobs)) == jobs


# --- leases --------------------------------------------------------------------------------------


async def test_reaping_fails_jobs_whose_lease_expired_and_leaves_fresh_ones(
    store: JobStore, harness: StoreHarness
) -> None:
    t0 = harness.clock.now()
    await running(store, "stale-running", t0, lease=10)
    await running(store, "fresh", t0, lease=100)
    await running(store, "renewed", t0, lease=5)
    await store.heartbeat("renewed", owner=OWNER, now=t0 + 4, lease_seconds=30)
    await running(store, "on-the-edge", t0, lease=20)
    await store.create(queued("waiting", t0))
    await running(store, "done", t0, lease=1)
    done = await store.finish("done", status=JobStatus.COMPLETED, now=t0 + 1, result={"ok": True})

    # Leases are judged by the `now` passed in, never by the store's own clock: no real wait.
    harness.clock.advance(20)
    now = harness.clock.now()
    reaped = await store.reap_expired_leases(now=now)

    # One attempt allowed (the default): a lost job fails rather than queue again.
    assert sorted(job.id for job in reaped) == ["stale-running"]
    for job in reaped:
        assert job.status is JobStatus.FAILED
        assert job.error is not None and job.error.code == "WORKER_LOST"
        assert (job.finished_at, job.lease_expires_at) == (now, None)
        assert await store.get(job.id) == job
    statuses = {
        job_id: (await stored(store, job_id)).status
        for job_id in ("fresh", "renewed", "on-the-edge", "waiting")
    }
    assert statuses == {
        "fresh": JobStatus.RUNNING,
        "renewed": JobStatus.RUNNING,
        "on-the-edge": JobStatus.RUNNING,
        "waiting": JobStatus.QUEUED,
    }
    assert await store.get("done") == done
    assert await store.reap_expired_leases(now=now) == []
    # The worker that comes back late cannot complete the job, and learns it failed.
    with pytest.raises(IllegalTransition):
        await store.finish("stale-running", status=JobStatus.COMPLETED, now=now, result={"late": 1})
    seen = await store.heartbeat("stale-running", owner=OWNER, now=now, lease_seconds=30)
    assert seen.status is JobStatus.FAILED


async def test_many_expired_leases_are_all_reaped(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    count = 2 * REDIS_REAP_BATCH + 20  # several reaping batches of the Redis store
    await asyncio.gather(*(running(store, f"job-{i}", t0, lease=1) for i in range(count)))
    harness.clock.advance(2)
    reaped = await store.reap_expired_leases(now=harness.clock.now())
    assert sorted(job.id for job in reaped) == sorted(f"job-{i}" for i in range(count))


# --- expiry --------------------------------------------------------------------------------------


async def test_finished_jobs_expire_after_their_ttl(harness: StoreHarness) -> None:
    # Short TTLs (Redis expiry is real time); the failure TTL is distinct from the result TTL.
    store = await harness.make(result_ttl_seconds=0.5, failure_ttl_seconds=1.5)
    t0 = harness.clock.now()
    for job_id in ("completed", "failed", "cancelled", "active"):
        await running(store, job_id, t0, lease=3600)
    await store.finish("completed", status=JobStatus.COMPLETED, now=t0, result={"r": 1})
    await store.finish("failed", status=JobStatus.FAILED, now=t0, error=JobFailure("TIMEOUT", "slow"))
    await store.finish("cancelled", status=JobStatus.CANCELLED, now=t0)

    async def present() -> set[str]:
        ids = ("completed", "failed", "cancelled", "active")
        return {job_id for job_id in ids if await store.get(job_id) is not None}

    await harness.elapse(0.2)
    assert await present() == {"completed", "failed", "cancelled", "active"}
    assert await store.purge_expired(now=harness.clock.now()) == 0

    await harness.elapse(0.6)
    # Expired jobs are gone for readers before any purge runs.
    assert await present() == {"failed", "active"}
    purged = await store.purge_expired(now=harness.clock.now())
    assert purged == (0 if harness.native_expiry else 2)
    with pytest.raises(NotFound):
        await store.finish("completed", status=JobStatus.CANCELLED, now=harness.clock.now())

    await harness.elapse(1.0)
    assert await present() == {"active"}
    assert await store.purge_expired(now=harness.clock.now()) == (0 if harness.native_expiry else 1)
    assert await present() == {"active"}


async def test_an_expired_id_can_be_reused(harness: StoreHarness) -> None:
    store = await harness.make(result_ttl_seconds=0.3, failure_ttl_seconds=0.3)
    t0 = harness.clock.now()
    await running(store, "job-1", t0)
    await store.finish("job-1", status=JobStatus.CANCELLED, now=t0)
    await harness.elapse(0.6)
    fresh = queued("job-1", harness.clock.now())
    await store.create(fresh)
    assert await store.get("job-1") == fresh


# --- payloads ------------------------------------------------------------------------------------


@functools.cache
def _ten_megabyte_result() -> dict[str, Any]:
    # Built once per run (it is slow to build); the stores never mutate what they are given.
    rng = random.Random(11)
    rows = [
        {
            "id": i,
            "score": rng.random(),
            "label": f"segment {i % 17} — é✓",
            "values": [rng.randint(-(10**6), 10**6) for _ in range(6)],
            "flag": i % 3 == 0,
            "missing": None,
        }
        for i in range(75_000)
    ]
    return {"rows": rows, "summary": {"count": len(rows), "nested": {"deep": [[1.5, -2.25], []]}}}


async def test_a_10_mb_result_round_trips(store: JobStore, harness: StoreHarness) -> None:
    result = _ten_megabyte_result()
    assert len(orjson.dumps(result)) >= 10 * 1024 * 1024
    t0 = harness.clock.now()
    await running(store, "big", t0)
    done = await store.finish("big", status=JobStatus.COMPLETED, now=t0 + 1, result=result)
    assert done.result == result
    kept = await store.get("big")
    assert kept is not None
    assert kept.result == result


async def test_unicode_everywhere_round_trips(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    job_id = f"job-{UNICODE}"
    job = queued(job_id, t0, job_type=f"type {UNICODE}")
    await store.create(job)
    assert await store.get(job_id) == job
    owner = f"owner {UNICODE}"
    await store.start_job(job_id, owner=owner, now=t0, lease_seconds=30)
    beat = await store.heartbeat(job_id, owner=owner, now=t0, lease_seconds=30, progress=0.1, message=UNICODE)
    assert beat.message == UNICODE
    result = {UNICODE: [UNICODE, {"名前": UNICODE}], "emoji": "🚀" * 1000}
    done = await store.finish(job_id, status=JobStatus.COMPLETED, now=t0 + 1, result=result)
    assert await store.get(job_id) == done
    assert done.result == result
    assert done.owner == owner

    await running(store, "failing", t0)
    failure = JobFailure("INSUFFICIENT_DATA", f"colonne « âge » constante — {UNICODE}")
    await store.finish("failing", status=JobStatus.FAILED, now=t0 + 1, error=failure)
    assert (await stored(store, "failing")).error == failure


async def test_times_and_progress_keep_full_float_precision(store: JobStore) -> None:
    t0 = 1_712_345_678.987654321
    await store.create(queued("job-1", t0))
    await store.start_job("job-1", owner=OWNER, now=t0 + 1 / 3, lease_seconds=0.1)
    await store.heartbeat("job-1", owner=OWNER, now=t0 + 0.7, lease_seconds=0.1, progress=0.1 + 0.2)
    job = await store.get("job-1")
    assert job is not None
    assert (job.created_at, job.started_at, job.lease_expires_at) == (t0, t0 + 1 / 3, t0 + 0.7 + 0.1)
    assert job.progress == 0.1 + 0.2
    done = await store.finish("job-1", status=JobStatus.COMPLETED, now=t0 + 2 / 3, result={"x": 1 / 7})
    assert await store.get("job-1") == done
    assert done.finished_at == t0 + 2 / 3


# --- replicas ------------------------------------------------------------------------------------


async def test_every_instance_sees_every_job(store: JobStore, harness: StoreHarness) -> None:
    if not harness.shared_between_instances:
        pytest.skip("the in-memory store is per process by design")
    other = await harness.make()
    t0 = harness.clock.now()
    await store.create(queued("job-1", t0))
    await other.start_job("job-1", owner="replica-b", now=t0, lease_seconds=30)
    await store.finish("job-1", status=JobStatus.CANCELLED, now=t0 + 1)
    assert await other.get("job-1") == await store.get("job-1")
    assert (await stored(other, "job-1")).status is JobStatus.CANCELLED
