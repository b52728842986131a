"""One fake clock for every tier: virtual time that moves only when a test moves it."""

from __future__ import annotations

import asyncio
import heapq
import itertools

from application.ports import Clock

# Enough loop turns for a woken heartbeat or reaper to finish its round against an in-memory store
# (a lock and a few dict operations) and wait on the clock again.
_SETTLE_TURNS = 20


class FakeClock(Clock):
    """`now()` is virtual; `sleep()` waits until the test has moved time past its wake-up.

    `advance()` moves time at once (for code that only reads the clock); `await elapse()` moves it
    and lets every sleeper that came due run its round first, so a test sees the heartbeats and
    reaper passes that time implies, in order, without waiting on the wall clock.
    """

    def __init__(self, start: float = 1_700_000_000.123456) -> None:
        self.current = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.current

    async def sleep(self, seconds: float) -> None:
        wake = self.current + max(0.0, seconds)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (wake, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        return sum(not future.done() for _, _, future in self._sleepers)

    def advance(self, seconds: float) -> None:
        self.current += seconds
        while self._sleepers and self._sleepers[0][0] <= self.current:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def elapse(self, seconds: float, step: float | None = None) -> None:
        """Moves time by `seconds`, in steps of `step` (default: from one wake-up to the next),
        letting the woken tasks run after each step."""
        target = self.current + seconds
        while True:
            due = [wake for wake, _, future in self._sleepers if not future.done() and wake <= target]
            next_time = min(due, default=target) if step is None else min(self.current + step, target)
            self.advance(max(0.0, next_time - self.current))
            await settle()
            if self.current >= target:
                return


async def settle() -> None:
    """Lets tasks that were just woken run until they wait again."""
    for _ in range(_SETTLE_TURNS):
        await asyncio.sleep(0)
