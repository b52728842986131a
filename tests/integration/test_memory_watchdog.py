"""The pool holds each compute process to its memory limit: a task that grows past it is ended and
fails with OUT_OF_MEMORY, the pool replaces the process, and other tasks go on. Real processes."""

from __future__ import annotations

import asyncio

import pytest

from adapters.compute.process_pool import ProcessPoolRunner, resident_bytes
from application.errors import OutOfMemory
from support import tasks

pytestmark = pytest.mark.timeout(60)

LIMIT_MB = 200


async def test_a_task_past_the_limit_fails_out_of_memory_and_the_pool_lives_on() -> None:
    runner = ProcessPoolRunner(
        workers=2, threads_per_task=1, queue_limit=2, memory_limit_bytes=LIMIT_MB << 20
    )
    await runner.start()
    try:
        before = set(runner.worker_pids())
        # A neighbour that stays under the limit runs alongside the one that grows past it.
        neighbour = asyncio.ensure_future(runner.run(tasks.allocate, 20, 1.5))
        with pytest.raises(OutOfMemory) as caught:
            await runner.run(tasks.allocate, 4 * LIMIT_MB, 5.0, timeout=30)
        assert caught.value.code == "OUT_OF_MEMORY"
        assert f"{LIMIT_MB} MB" in caught.value.message
        assert await neighbour == 20
        after = set(runner.worker_pids())
        assert len(after) == 2 and after != before  # the grown process was replaced
        assert await runner.run(tasks.add, 2, 3) == 5
        assert runner.capacity().busy == 0
    finally:
        await runner.close()


async def test_a_task_under_the_limit_is_untouched() -> None:
    runner = ProcessPoolRunner(
        workers=1, threads_per_task=1, queue_limit=1, memory_limit_bytes=LIMIT_MB << 20
    )
    await runner.start()
    try:
        pid = runner.worker_pids()[0]
        assert await runner.run(tasks.allocate, 50, 0.6) == 50
        assert runner.worker_pids() == [pid]
    finally:
        await runner.close()


def test_resident_bytes_reads_a_live_process_and_none_for_a_gone_one() -> None:
    import os

    assert (resident_bytes(os.getpid()) or 0) > 1 << 20
    assert resident_bytes(2**22 + 12345) is None
