"""The JobStore's queue (claim, requeue, attempts, limits, idempotency, payloads), run against every
adapter. The claims of several replicas are several store instances over the same data."""

from __future__ import annotations

import asyncio
import os

import pytest

from application.errors import Busy
from application.ports import JobStore, QueueLimits
from domain.errors import IllegalTransition, NotFound
from domain.jobs import Job, JobFailure, JobStatus

from .job_store_harness import StoreHarness

LEASE = 30.0


def job(job_id: str, at: float, *, tenant: str | None = None, job_type: str = "segmentation") -> Job:
    return Job(id=job_id, type=job_type, status=JobStatus.QUEUED, created_at=at, tenant_id=tenant)


async def claim(store: JobStore, owner: str, now: float, *, cap: int | None = None) -> Job | None:
    claimed = await store.claim_next(owner=owner, now=now, lease_seconds=LEASE, tenant_cap=cap)
    return None if claimed is None else claimed.job


async def claim_ids(store: JobStore, now: float, *, owner: str = "a", cap: int | None = None) -> list[str]:
    ids = []
    while (claimed := await claim(store, owner, now, cap=cap)) is not None:
        ids.append(claimed.id)
    return ids


async def test_claims_take_the_oldest_job_first_and_start_it(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    # Created out of order; equal times are ordered by id.
    for job_id, at in (("c", t0 + 2), ("a", t0), ("b2", t0 + 1), ("b1", t0 + 1)):
        created = await store.create(job(job_id, at), payload=job_id.encode())
        assert created == job(job_id, at)

    first = await store.claim_next(owner="replica-a", now=t0 + 5, lease_seconds=LEASE)
    assert first is not None
    assert first.payload == b"a"
    assert first.job == Job(
        id="a",
        type="segmentation",
        status=JobStatus.RUNNING,
        created_at=t0,
        started_at=t0 + 5,
        owner="replica-a",
        lease_expires_at=t0 + 5 + LEASE,
        attempts=1,
    )
    assert await store.get("a") == first.job
    assert await claim_ids(store, t0 + 5) == ["b1", "b2", "c"]
    assert await store.claim_next(owner="replica-a", now=t0 + 6, lease_seconds=LEASE) is None


async def test_a_cancelled_queued_job_is_never_claimed_and_its_payload_is_dropped(
    store: JobStore, harness: StoreHarness
) -> None:
    t0 = harness.clock.now()
    await store.create(job("gone", t0), payload=b"x" * 100)
    await store.create(job("kept", t0 + 1), payload=b"y")
    assert await store.payload("gone") == b"x" * 100
    await store.finish("gone", status=JobStatus.CANCELLED, now=t0 + 1)
    assert await store.payload("gone") is None
    assert await claim_ids(store, t0 + 2) == ["kept"]
    depth = await store.queue_depth()
    assert (depth.queued, depth.running, depth.payload_bytes) == (0, 1, 1)


async def test_payloads_round_trip_byte_for_byte_and_go_when_the_job_ends(
    store: JobStore, harness: StoreHarness
) -> None:
    t0 = harness.clock.now()
    payload = os.urandom(3 << 20) + b"\x00" * 1000 + bytes(range(256))
    await store.create(job("big", t0), payload=payload)
    await store.create(job("none", t0 + 1))
    claimed = await store.claim_next(owner="a", now=t0, lease_seconds=LEASE)
    assert claimed is not None and claimed.payload == payload
    assert await store.payload("big") == payload
    assert (await store.queue_depth()).payload_bytes == len(payload)
    await store.finish("big", status=JobStatus.COMPLETED, now=t0 + 1, result={"ok": 1}, owner="a")
    assert await store.payload("big") is None
    assert (await store.queue_depth()).payload_bytes == 0
    second = await store.claim_next(owner="a", now=t0 + 2, lease_seconds=LEASE)
    assert second is not None and (second.job.id, second.payload) == ("none", None)


async def test_concurrent_claimers_take_every_job_exactly_once(
    store: JobStore, harness: StoreHarness
) -> None:
    replicas = [store] + (
        [await harness.make() for _ in range(5)] if harness.shared_between_instances else []
    )
    t0 = harness.clock.now()
    count = 120
    await asyncio.gather(*(store.create(job(f"job-{i:03}", t0 + i / 1000)) for i in range(count)))

    async def drain(index: int, replica: JobStore) -> list[str]:
        taken = []
        while (claimed := await claim(replica, f"replica-{index}", t0 + 1)) is not None:
            taken.append(claimed.id)
            await asyncio.sleep(0)
        return taken

    per_claimer = await asyncio.gather(*(drain(i % len(replicas), r) for i, r in enumerate(replicas * 2)))
    taken = [job_id for ids in per_claimer for job_id in ids]
    assert sorted(taken) == [f"job-{i:03}" for i in range(count)]  # none twice, none skipped
    for job_id in taken[:10]:
        stored = await store.get(job_id)
        assert stored is not None and (stored.status, stored.attempts) == (JobStatus.RUNNING, 1)


async def test_a_tenant_runs_at_most_its_cap(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    for index, tenant in enumerate(("acme", "acme", "acme", "globex", None, None)):
        await store.create(job(f"job-{index}", t0 + index, tenant=tenant))
    # acme's second and third wait while its first runs; others pass them.
    assert await claim_ids(store, t0 + 10, cap=1) == ["job-0", "job-3", "job-4", "job-5"]
    await store.finish("job-0", status=JobStatus.COMPLETED, now=t0 + 11, result={})
    assert await claim_ids(store, t0 + 12, cap=1) == ["job-1"]
    # No cap: the tenant's rest is claimed too.
    assert await claim_ids(store, t0 + 12) == ["job-2"]


async def test_concurrent_claims_keep_a_tenant_under_its_cap(store: JobStore, harness: StoreHarness) -> None:
    replicas = [store] + (
        [await harness.make() for _ in range(3)] if harness.shared_between_instances else []
    )
    t0 = harness.clock.now()
    await asyncio.gather(*(store.create(job(f"job-{i:02}", t0 + i, tenant="acme")) for i in range(20)))
    claims = await asyncio.gather(
        *(claim(replicas[i % len(replicas)], f"r{i}", t0 + 30, cap=3) for i in range(12))
    )
    assert len([c for c in claims if c is not None]) == 3
    assert (await store.queue_depth()).running == 3


async def test_requeue_gives_a_job_back_with_its_payload_and_place(
    store: JobStore, harness: StoreHarness
) -> None:
    t0 = harness.clock.now()
    await store.create(job("first", t0), payload=b"input")
    await store.create(job("second", t0 + 1))
    claimed = await claim(store, "a", t0 + 2)
    assert claimed is not None and claimed.id == "first"
    await store.heartbeat("first", owner="a", now=t0 + 3, lease_seconds=LEASE, progress=0.5, message="m")

    with pytest.raises(IllegalTransition):
        await store.requeue("first", owner="b", refund_attempt=True)  # not b's
    with pytest.raises(IllegalTransition):
        await store.requeue("second", owner="a", refund_attempt=True)  # not running
    with pytest.raises(NotFound):
        await store.requeue("ghost", owner="a", refund_attempt=True)

    back = await store.requeue("first", owner="a", refund_attempt=True)
    assert back == job("first", t0)
    assert await store.get("first") == back
    again = await store.claim_next(owner="b", now=t0 + 4, lease_seconds=LEASE)
    assert again is not None and again.payload == b"input"
    assert (again.job.id, again.job.owner, again.job.attempts, again.job.progress) == ("first", "b", 1, 0.0)

    counted = await store.requeue("first", owner="b", refund_attempt=False)
    assert (counted.status, counted.attempts) == (JobStatus.QUEUED, 1)


async def test_an_expired_lease_requeues_the_job_until_its_attempts_are_spent(
    store: JobStore, harness: StoreHarness
) -> None:
    t0 = harness.clock.now()
    await store.create(job("job-1", t0), payload=b"p")
    await claim(store, "dead", t0)
    await store.create(job("fresh", t0))
    await claim(store, "live", t0)
    harness.clock.advance(LEASE + 1)
    now = harness.clock.now()
    await store.heartbeat("fresh", owner="live", now=now, lease_seconds=LEASE)

    reaped = await store.reap_expired_leases(now=now, max_attempts=2)
    assert [(j.id, j.status, j.attempts, j.owner) for j in reaped] == [("job-1", JobStatus.QUEUED, 1, None)]
    assert await store.get("job-1") == reaped[0]
    # The dead replica comes back late: it may neither renew nor finish the job.
    seen = await store.heartbeat("job-1", owner="dead", now=now, lease_seconds=LEASE, progress=0.9)
    assert (seen.status, seen.lease_expires_at, seen.progress) == (JobStatus.QUEUED, None, 0.0)
    with pytest.raises(IllegalTransition):
        await store.finish("job-1", status=JobStatus.COMPLETED, now=now, result={"late": 1}, owner="dead")

    second = await store.claim_next(owner="other", now=now, lease_seconds=LEASE)
    assert second is not None and (second.job.attempts, second.payload) == (2, b"p")
    harness.clock.advance(LEASE + 1)
    now = harness.clock.now()
    await store.heartbeat("fresh", owner="live", now=now, lease_seconds=LEASE)
    [lost] = await store.reap_expired_leases(now=now, max_attempts=2)
    assert (lost.id, lost.status, lost.attempts) == ("job-1", JobStatus.FAILED, 2)
    assert lost.error is not None and lost.error.code == "WORKER_LOST"
    assert await store.payload("job-1") is None
    assert (await store.get("fresh")).status is JobStatus.RUNNING  # type: ignore[union-attr]


async def test_a_heartbeat_from_another_owner_changes_nothing(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    await store.create(job("job-1", t0))
    mine = await claim(store, "a", t0)
    seen = await store.heartbeat("job-1", owner="b", now=t0 + 10, lease_seconds=LEASE, progress=0.5)
    assert seen == mine
    with pytest.raises(IllegalTransition):
        await store.finish("job-1", status=JobStatus.FAILED, now=t0, error=JobFailure("X", "y"), owner="b")
    # Without an owner (a cancel through any replica) the job ends whoever runs it.
    cancelled = await store.finish("job-1", status=JobStatus.CANCELLED, now=t0 + 1)
    assert cancelled.status is JobStatus.CANCELLED


async def test_the_queue_refuses_jobs_past_its_count(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    limits = QueueLimits(max_queued_jobs=3)
    for index in range(3):
        await store.create(job(f"job-{index}", t0 + index), limits=limits)
    with pytest.raises(Busy):
        await store.create(job("job-3", t0 + 3), limits=limits)
    assert await store.get("job-3") is None
    # A claimed job no longer waits: its place is free.
    await claim(store, "a", t0 + 4)
    await store.create(job("job-3", t0 + 3), limits=limits)
    depth = await store.queue_depth()
    assert (depth.queued, depth.running) == (3, 1)


async def test_the_queue_refuses_payloads_past_its_bytes(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    limits = QueueLimits(max_queued_jobs=100, max_queued_bytes=250)
    await store.create(job("a", t0), payload=b"1" * 100, limits=limits)
    await store.create(job("b", t0 + 1), payload=b"2" * 100, limits=limits)
    with pytest.raises(Busy):
        await store.create(job("c", t0 + 2), payload=b"3" * 100, limits=limits)
    await store.create(job("small", t0 + 2), payload=b"4" * 50, limits=limits)  # exactly full
    # Running jobs keep their payload, so their bytes count until they end.
    await claim(store, "r", t0 + 3)
    with pytest.raises(Busy):
        await store.create(job("c", t0 + 2), payload=b"3" * 100, limits=limits)
    await store.finish("a", status=JobStatus.COMPLETED, now=t0 + 4, result={})
    await store.create(job("c", t0 + 2), payload=b"3" * 100, limits=limits)


async def test_concurrent_creates_cannot_pass_the_bound_together(
    store: JobStore, harness: StoreHarness
) -> None:
    replicas = [store] + (
        [await harness.make() for _ in range(3)] if harness.shared_between_instances else []
    )
    t0 = harness.clock.now()
    limits = QueueLimits(max_queued_jobs=5)

    async def submit(index: int) -> bool:
        try:
            await replicas[index % len(replicas)].create(job(f"job-{index:02}", t0 + index), limits=limits)
        except Busy:
            return False
        return True

    accepted = await asyncio.gather(*(submit(i) for i in range(24)))
    assert sum(accepted) == 5
    assert (await store.queue_depth()).queued == 5


async def test_an_idempotency_key_returns_the_first_job(store: JobStore, harness: StoreHarness) -> None:
    t0 = harness.clock.now()
    first = await store.create(job("first", t0), payload=b"1", idempotency_key="order-7")
    again = await store.create(job("second", t0 + 1), payload=b"2", idempotency_key="order-7")
    assert again == first
    assert await store.get("second") is None
    other = await store.create(job("third", t0 + 1), idempotency_key="order-8")
    assert other.id == "third"
    # Whatever became of the first job, the key answers with it while it is kept.
    await claim(store, "a", t0 + 2)
    await store.finish("first", status=JobStatus.COMPLETED, now=t0 + 3, result={"n": 1})
    done = await store.create(job("fourth", t0 + 4), idempotency_key="order-7")
    assert (done.id, done.status, done.result) == ("first", JobStatus.COMPLETED, {"n": 1})
    assert (await store.queue_depth()).queued == 1  # only "third"


async def test_concurrent_submissions_with_one_key_make_one_job(
    store: JobStore, harness: StoreHarness
) -> None:
    replicas = [store] + (
        [await harness.make() for _ in range(3)] if harness.shared_between_instances else []
    )
    t0 = harness.clock.now()
    made = await asyncio.gather(
        *(
            replicas[i % len(replicas)].create(job(f"try-{i}", t0 + i), idempotency_key="retry-me")
            for i in range(16)
        )
    )
    assert len({m.id for m in made}) == 1
    assert (await store.queue_depth()).queued == 1


async def test_a_key_is_free_again_once_its_job_expired(harness: StoreHarness) -> None:
    store = await harness.make(result_ttl_seconds=0.5, failure_ttl_seconds=0.5)
    t0 = harness.clock.now()
    await store.create(job("first", t0), idempotency_key="k")
    await store.finish("first", status=JobStatus.CANCELLED, now=t0)
    await harness.elapse(1.2)
    await store.purge_expired(now=harness.clock.now())
    fresh = await store.create(job("second", harness.clock.now()), idempotency_key="k")
    assert fresh.id == "second"
