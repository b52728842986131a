"""Runs tasks in a thread of this process: for tests and tools where a process pool is overkill."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from application.errors import Busy, TaskCancelled, TaskTimedOut
from application.ports import ComputeRunner, PoolCapacity, Reservation

R = TypeVar("R")


class _Place(Reservation):
    def __init__(self, runner: InlineRunner) -> None:
        self._runner = runner
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._runner._queued -= 1


class InlineRunner(ComputeRunner):
    """Cancellation is cooperative here: a cancel seen between progress reports stops the task."""

    def __init__(self, queue_limit: int = 64, *, slots: int = 1) -> None:
        self._queue_limit = queue_limit
        # The jobs run at once (each in its own thread), as `slots` compute workers would.
        self._slots = slots
        self._queued = 0

    def reserve(self) -> Reservation:
        if self._queued >= self._queue_limit:
            raise Busy("the inline runner's queue is full")
        self._queued += 1
        return _Place(self)

    def capacity(self) -> PoolCapacity:
        return PoolCapacity(
            workers=self._slots,
            threads_per_task=1,
            busy=0,
            queued=self._queued,
            queue_limit=self._queue_limit,
        )

    async def run(
        self,
        task: Callable[..., R],
        *args: Any,
        reservation: Reservation | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        timeout: float | None = None,
        cancel_event: asyncio.Event | None = None,
        on_start: Callable[[], Awaitable[None]] | None = None,
        start_within: float | None = None,
    ) -> R:
        # Every task starts at once in its own thread: `start_within` is always met.
        place = reservation or self.reserve()
        loop = asyncio.get_running_loop()

        # Set when the caller gives up (timeout, asyncio cancellation), even without a cancel_event:
        # the thread cannot be killed, but it stops at its next report instead of running on.
        abandoned = threading.Event()

        def report(fraction: float, message: str = "") -> None:
            if abandoned.is_set() or (cancel_event is not None and cancel_event.is_set()):
                raise TaskCancelled("the task was cancelled")
            if on_progress is not None:
                loop.call_soon_threadsafe(on_progress, fraction, message)

        try:
            if on_start is not None:
                await on_start()
            return await asyncio.wait_for(asyncio.to_thread(task, *args, progress=report), timeout)
        except TimeoutError:
            # The thread cannot be stopped; it ends at its next progress report or when done.
            abandoned.set()
            if cancel_event is not None:
                cancel_event.set()
            raise TaskTimedOut(f"the task did not finish within {timeout} s") from None
        except asyncio.CancelledError:
            abandoned.set()
            raise
        finally:
            place.release()
