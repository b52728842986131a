"""ProcessPoolRunner over real forkserver processes: results, errors, cancels, timeouts, dead workers,
reservations and the workers' environment. (The InlineRunner: tests/unit/test_inline_runner.py.)"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator

import pytest

from adapters.compute.process_pool import ProcessPoolRunner
from adapters.compute.worker_main import SPIN_COUNT
from application.errors import Busy, TaskCancelled, TaskTimedOut, WorkerLost
from domain.errors import (
    InsufficientData,
    InternalFailure,
    NotFound,
    ValidationFailed,
    WorkerError,
    field_error,
)
from support import tasks, thread_tasks
from support.eventually import eventually
from support.processes import alive

pytestmark = pytest.mark.timeout(60)


async def _started(workers: int = 1, threads: int = 1, queue_limit: int = 1) -> ProcessPoolRunner:
    runner = ProcessPoolRunner(workers=workers, threads_per_task=threads, queue_limit=queue_limit)
    await runner.start()
    return runner


@pytest.fixture
async def pool() -> AsyncIterator[ProcessPoolRunner]:
    runner = await _started()
    try:
        yield runner
    finally:
        await runner.close()


# ------------------------------------------------------------------------- ProcessPoolRunner


async def test_result_and_progress_reach_the_caller_in_order(pool: ProcessPoolRunner) -> None:
    seen: list[tuple[float, str]] = []
    result = await pool.run(
        tasks.staged, ["load", "fit", "dump"], 0.25, on_progress=lambda f, m: seen.append((f, m))
    )
    assert result == "done"
    assert seen == [(1 / 3, "load"), (2 / 3, "fit"), (1.0, "dump")]
    assert pool.capacity().busy == 0


async def test_the_task_runs_in_another_process(pool: ProcessPoolRunner) -> None:
    worker_pid = await pool.run(tasks.pid)
    assert worker_pid != os.getpid()
    assert worker_pid in pool.worker_pids()


@pytest.mark.parametrize(
    "cls", [InsufficientData, ValidationFailed, NotFound, InternalFailure], ids=lambda c: c.__name__
)
async def test_a_worker_error_comes_back_as_the_same_class(
    pool: ProcessPoolRunner, cls: type[WorkerError]
) -> None:
    details = [field_error("label", "one class only"), {"field": "data", "rows": 3}]
    with pytest.raises(WorkerError) as caught:
        await pool.run(tasks.raise_error, cls, "not enough rows", details)
    assert type(caught.value) is cls
    assert caught.value.code == cls.code
    assert caught.value.message == "not enough rows"
    assert caught.value.details == details


async def test_a_crash_becomes_internal_failure_and_the_worker_lives_on(pool: ProcessPoolRunner) -> None:
    before = pool.worker_pids()
    with pytest.raises(InternalFailure) as caught:
        await pool.run(tasks.crash)
    assert "ValueError: boom in the task" in caught.value.message
    # Same process, still serving.
    assert await pool.run(tasks.add, 2, 3) == 5
    assert pool.worker_pids() == before


async def test_an_unpicklable_result_is_an_internal_failure_not_a_dead_worker(
    pool: ProcessPoolRunner,
) -> None:
    before = pool.worker_pids()
    with pytest.raises(InternalFailure, match="could not be sent"):
        await pool.run(tasks.unpicklable_result)
    assert await pool.run(tasks.add, 1, 1) == 2
    assert pool.worker_pids() == before


async def test_cancel_event_stops_a_30_s_task_in_under_2_s(pool: ProcessPoolRunner) -> None:
    started = asyncio.Event()
    cancel = asyncio.Event()
    notes: list[str] = []

    def on_progress(fraction: float, note: str) -> None:
        notes.append(note)
        started.set()

    run = asyncio.create_task(
        pool.run(tasks.announce_then_sleep, 30.0, on_progress=on_progress, cancel_event=cancel)
    )
    await asyncio.wait_for(started.wait(), 20)
    task_pid = int(notes[0])
    t0 = time.monotonic()
    cancel.set()
    with pytest.raises(TaskCancelled):
        await run
    assert time.monotonic() - t0 < 2.0
    # The process running it was stopped and replaced; the pool serves the next task.
    await eventually(lambda: not alive(task_pid), timeout=2.0)
    assert task_pid not in pool.worker_pids()
    assert await pool.run(tasks.add, 20, 22) == 42
    assert pool.capacity().busy == 0 and pool.capacity().queued == 0


async def test_timeout_gives_task_timed_out_and_the_pool_recovers(pool: ProcessPoolRunner) -> None:
    t0 = time.monotonic()
    with pytest.raises(TaskTimedOut):
        await pool.run(tasks.announce_then_sleep, 30.0, timeout=0.5)
    assert time.monotonic() - t0 < 2.5
    assert await pool.run(tasks.add, 1, 2) == 3


async def test_sigkill_of_the_worker_gives_worker_lost_and_a_replacement(pool: ProcessPoolRunner) -> None:
    started = asyncio.Event()
    notes: list[str] = []

    def on_progress(fraction: float, note: str) -> None:
        notes.append(note)
        started.set()

    run = asyncio.create_task(pool.run(tasks.announce_then_sleep, 30.0, on_progress=on_progress))
    await asyncio.wait_for(started.wait(), 20)
    victim = int(notes[0])
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(WorkerLost):
        await asyncio.wait_for(run, 5)
    new_pid = await pool.run(tasks.pid)
    assert new_pid != victim
    assert victim not in pool.worker_pids()
    assert len(pool.worker_pids()) == 1


async def test_an_idle_worker_that_died_is_replaced_before_the_next_task(pool: ProcessPoolRunner) -> None:
    [victim] = pool.worker_pids()
    os.kill(victim, signal.SIGKILL)
    await eventually(lambda: not alive(victim), timeout=5)
    assert await pool.run(tasks.add, 4, 5) == 9
    assert victim not in pool.worker_pids()


async def test_reserve_raises_busy_when_workers_and_queue_are_full() -> None:
    runner = await _started(workers=1, queue_limit=1)
    cancel = asyncio.Event()
    try:
        started = asyncio.Event()
        running = asyncio.create_task(
            runner.run(
                tasks.announce_then_sleep, 30.0, on_progress=lambda f, m: started.set(), cancel_event=cancel
            )
        )
        await asyncio.wait_for(started.wait(), 20)
        assert runner.capacity().busy == 1
        assert runner.capacity().queued == 0
        waiting = asyncio.create_task(runner.run(tasks.add, 1, 1, cancel_event=cancel))
        await eventually(lambda: runner.capacity().queued == 1, timeout=5)
        capacity = runner.capacity()
        assert (capacity.workers, capacity.busy, capacity.queued, capacity.queue_limit) == (
            1,
            1,
            1,
            1,
        )
        with pytest.raises(Busy) as caught:
            runner.reserve()
        assert caught.value.code == "BUSY" and caught.value.retry_after_seconds > 0
        # run() without a reservation reserves too, so it is refused the same way (no hang).
        with pytest.raises(Busy):
            await asyncio.wait_for(runner.run(tasks.add, 1, 1), 1)
        cancel.set()
        for task in (running, waiting):
            with pytest.raises(TaskCancelled):
                await task
        assert runner.capacity().busy == 0 and runner.capacity().queued == 0
        # Places are given back: two can be taken again, and released without running anything.
        first, second = runner.reserve(), runner.reserve()
        with pytest.raises(Busy):
            runner.reserve()
        first.release()
        first.release()  # idempotent: releasing twice frees one place only
        third = runner.reserve()
        with pytest.raises(Busy):
            runner.reserve()
        second.release()
        third.release()
        assert await runner.run(tasks.add, 2, 2) == 4
    finally:
        await runner.close()


async def test_a_reserved_place_is_used_by_run_and_released_after() -> None:
    runner = await _started(workers=1, queue_limit=0)
    try:
        place = runner.reserve()
        with pytest.raises(Busy):
            runner.reserve()
        assert await runner.run(tasks.add, 3, 4, reservation=place) == 7
        runner.reserve().release()  # free again
        # A task that failed gives its place back too.
        with pytest.raises(InternalFailure):
            await runner.run(tasks.crash)
        runner.reserve().release()
    finally:
        await runner.close()


async def test_cancel_while_queued_returns_at_once_and_frees_the_place() -> None:
    runner = await _started(workers=1, queue_limit=1)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    try:
        started = asyncio.Event()
        first = asyncio.create_task(
            runner.run(
                tasks.announce_then_sleep,
                30.0,
                on_progress=lambda f, m: started.set(),
                cancel_event=stop_first,
            )
        )
        await asyncio.wait_for(started.wait(), 20)
        on_start_called = []

        async def on_start() -> None:
            on_start_called.append(True)

        second = asyncio.create_task(runner.run(tasks.add, 1, 1, cancel_event=stop_second, on_start=on_start))
        await eventually(lambda: runner.capacity().queued == 1, timeout=5)
        t0 = time.monotonic()
        stop_second.set()
        with pytest.raises(TaskCancelled):
            await second
        assert time.monotonic() - t0 < 0.5
        assert on_start_called == []
        assert runner.capacity().queued == 0 and runner.capacity().busy == 1
        assert not first.done()
        stop_first.set()
        with pytest.raises(TaskCancelled):
            await first
    finally:
        await runner.close()


async def test_a_run_cancelled_while_queued_does_not_leak_a_worker() -> None:
    """asyncio cancellation (e.g. JobExecutor.close, or a request task being cancelled) of a run that
    waits for a worker must not leave a hidden getter that later swallows the worker."""
    runner = await _started(workers=1, queue_limit=2)
    stop_first = asyncio.Event()
    try:
        started = asyncio.Event()
        first = asyncio.create_task(
            runner.run(
                tasks.announce_then_sleep,
                30.0,
                on_progress=lambda f, m: started.set(),
                cancel_event=stop_first,
            )
        )
        await asyncio.wait_for(started.wait(), 20)
        queued = asyncio.create_task(runner.run(tasks.add, 1, 1, cancel_event=asyncio.Event()))
        await eventually(lambda: runner.capacity().queued == 1, timeout=5)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        stop_first.set()
        with pytest.raises(TaskCancelled):
            await first
        # The only worker must be available again.
        assert await asyncio.wait_for(runner.run(tasks.add, 5, 5), 10) == 10
    finally:
        await runner.close()


async def test_on_start_runs_once_a_worker_is_free_and_its_error_aborts_the_run(
    pool: ProcessPoolRunner,
) -> None:
    calls: list[str] = []

    async def on_start() -> None:
        calls.append("started")

    assert await pool.run(tasks.add, 1, 2, on_start=on_start) == 3
    assert calls == ["started"]

    async def refuse() -> None:
        raise NotFound("the job is gone")

    with pytest.raises(NotFound):
        await pool.run(tasks.add, 1, 2, on_start=refuse)
    assert pool.capacity().busy == 0 and pool.capacity().queued == 0
    assert await pool.run(tasks.add, 2, 2) == 4


async def test_workers_get_thread_limits_and_a_bounded_spin_but_no_wait_policy() -> None:
    # This process sets OMP_WAIT_POLICY=PASSIVE (tests/conftest.py) and the forkserver hands its
    # environment down: the worker must drop it, or it would override the spin count.
    assert os.environ.get("OMP_WAIT_POLICY") == "PASSIVE"
    runner = await _started(workers=1, threads=2)
    try:
        env = await runner.run(
            tasks.environment,
            [
                "OMP_NUM_THREADS",
                "OMP_WAIT_POLICY",
                "GOMP_SPINCOUNT",
                "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS",
                "POLARS_MAX_THREADS",
            ],
        )
    finally:
        await runner.close()
    assert env == {
        "OMP_NUM_THREADS": "2",
        "OMP_WAIT_POLICY": None,
        "GOMP_SPINCOUNT": str(SPIN_COUNT),
        "OPENBLAS_NUM_THREADS": "2",
        "MKL_NUM_THREADS": "2",
        "POLARS_MAX_THREADS": "2",
    }
    assert runner.worker_pids() == []  # close() forgot the stopped workers


async def test_a_task_gets_no_more_threads_than_cpus_are_free_in_every_thread_pool() -> None:
    # A budget above the machine's CPUs: fewer are always free, so the task is always limited.
    budget = len(os.sched_getaffinity(0)) + 2
    runner = await _started(workers=1, threads=budget)
    try:
        first = await runner.run(thread_tasks.thread_pools)
        second = await runner.run(thread_tasks.thread_pools)
    finally:
        await runner.close()
    for seen in (first, second):
        chosen = int(seen["task_threads"])
        assert 1 <= chosen < budget
        assert seen["apis"] == ["openblas", "openmp"]
        # Both libgomps (LightGBM's and scikit-learn's) and every OpenBLAS run with the task's count.
        assert set(seen["pools"].values()) == {chosen}, seen


async def test_a_one_thread_budget_runs_every_pool_with_one_thread() -> None:
    runner = await _started(workers=1, threads=1)
    try:
        seen = await runner.run(thread_tasks.thread_pools)
    finally:
        await runner.close()
    assert seen["task_threads"] == "1"
    assert set(seen["pools"].values()) == {1}


async def test_two_workers_run_tasks_side_by_side() -> None:
    runner = await _started(workers=2, queue_limit=0)
    try:
        t0 = time.monotonic()
        pids = await asyncio.gather(
            runner.run(tasks.announce_then_sleep, 1.0), runner.run(tasks.announce_then_sleep, 1.0)
        )
        elapsed = time.monotonic() - t0
    finally:
        await runner.close()
    assert len(set(pids)) == 2
    assert elapsed < 1.9  # in parallel, not one after the other


async def test_close_stops_every_worker_and_refuses_new_work() -> None:
    runner = await _started(workers=2)
    pids = runner.worker_pids()
    assert len(pids) == 2
    await runner.close()
    for worker_pid in pids:
        await eventually(lambda p=worker_pid: not alive(p), timeout=5)
    with pytest.raises(Busy):
        runner.reserve()


async def test_run_before_start_is_an_internal_failure() -> None:
    runner = ProcessPoolRunner(workers=1, threads_per_task=1, queue_limit=1)
    with pytest.raises(InternalFailure):
        await runner.run(tasks.add, 1, 1)


def test_the_liveness_helper_tells_live_from_dead_processes() -> None:
    """The cancel and kill tests rely on alive(); a helper that always said False would make them vacuous."""
    assert alive(os.getpid())
    child = subprocess.Popen(["sleep", "0"])
    child.wait()
    assert not alive(child.pid)
