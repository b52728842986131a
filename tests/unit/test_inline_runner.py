"""InlineRunner: tasks in a thread of this process, cooperative cancellation at the next progress
report, timeouts, reservations. Tasks are Steppers the test moves on, so no test waits for work."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.compute.inline_runner import InlineRunner
from application.errors import Busy, TaskCancelled, TaskTimedOut
from domain.errors import InsufficientData, field_error
from support import tasks
from support.eventually import eventually
from support.stepper import Stepper

pytestmark = pytest.mark.timeout(60)

# Timeouts are the runner's own wall-clock waits: kept short, and never what a test waits for.
SHORT_TIMEOUT = 0.05


@pytest.fixture
def stepper() -> Iterator[Callable[..., Stepper]]:
    made: list[Stepper] = []

    def make(steps: int = 3, result: Any = None) -> Stepper:
        made.append(Stepper(steps, result))
        return made[-1]

    yield make
    for task in made:
        task.release()


def _thread_id(*, progress: object) -> int:
    return threading.get_ident()


async def test_inline_runner_runs_off_the_event_loop_and_reports_progress() -> None:
    runner = InlineRunner()
    seen: list[tuple[float, str]] = []
    loop_thread = threading.get_ident()
    result = await runner.run(tasks.staged, ["a", "b"], 0.0, on_progress=lambda f, m: seen.append((f, m)))
    assert result == "done"
    assert seen == [(0.5, "a"), (1.0, "b")]
    assert await runner.run(_thread_id) != loop_thread


async def test_inline_runner_passes_worker_errors_through_unchanged() -> None:
    runner = InlineRunner()
    with pytest.raises(InsufficientData) as caught:
        await runner.run(tasks.raise_error, InsufficientData, "few", [field_error("data", "3 rows")])
    assert caught.value.details == [{"field": "data", "message": "3 rows"}]


async def test_inline_runner_cancels_cooperatively_at_the_next_report(
    stepper: Callable[..., Stepper],
) -> None:
    runner = InlineRunner()
    cancel = asyncio.Event()
    seen: list[float] = []
    task = stepper(5)
    run = asyncio.create_task(runner.run(task, on_progress=lambda f, m: seen.append(f), cancel_event=cancel))
    task.go(2)
    await eventually(lambda: len(seen) >= 2, what="two progress reports")
    cancel.set()
    task.go()
    with pytest.raises(TaskCancelled):
        await run
    assert task.reports == 2 and seen == [1 / 6, 2 / 6]
    assert runner.capacity().queued == 0


async def test_inline_runner_timeout(stepper: Callable[..., Stepper]) -> None:
    runner = InlineRunner()
    cancel = asyncio.Event()
    task = stepper(3)
    with pytest.raises(TaskTimedOut):
        await runner.run(task, timeout=SHORT_TIMEOUT, cancel_event=cancel)
    assert cancel.is_set()  # the thread stops at its next report
    assert runner.capacity().queued == 0
    task.go()
    await eventually(task.ended.is_set, what="the thread ending")
    assert task.reports == 0


async def test_inline_runner_timeout_stops_the_thread_even_without_a_cancel_event(
    stepper: Callable[..., Stepper],
) -> None:
    runner = InlineRunner()
    task = stepper(3)
    with pytest.raises(TaskTimedOut):
        await runner.run(task, timeout=SHORT_TIMEOUT)
    task.go()
    await eventually(task.ended.is_set, what="the thread ending")
    assert task.reports == 0


async def test_inline_runner_asyncio_cancellation_stops_the_thread(stepper: Callable[..., Stepper]) -> None:
    runner = InlineRunner()
    task = stepper(3)
    run = asyncio.create_task(runner.run(task))
    await eventually(task.started.is_set, what="the task starting")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    task.go()
    await eventually(task.ended.is_set, what="the thread ending")
    assert task.reports == 0
    assert runner.capacity().queued == 0


async def test_inline_runner_queue_limit_and_on_start() -> None:
    runner = InlineRunner(queue_limit=2)
    a, b = runner.reserve(), runner.reserve()
    assert runner.capacity().queued == 2
    with pytest.raises(Busy):
        runner.reserve()
    a.release()
    a.release()
    assert runner.capacity().queued == 1
    calls: list[int] = []

    async def on_start() -> None:
        calls.append(1)

    assert await runner.run(tasks.add, 1, 1, reservation=b, on_start=on_start) == 2
    assert calls == [1]
    assert runner.capacity().queued == 0
