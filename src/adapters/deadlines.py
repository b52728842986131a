"""Deadlines for calls to a server that may go silent (the job stores).

A server that accepts connections and never answers (a hung process, a network that drops packets
without resetting) must not hold a request or the job engine for the drivers' own timeouts, which
are per read or absent. Every call gets one deadline for all of it: checkout, reconnect, the
command and the reply. A payload adds to it, at a throughput below any network a store is deployed
on, so a large result is written on a slow link rather than refused.

At the deadline the caller gets DependencyUnavailable at once; the abandoned call is cancelled and
its driver's cleanup (SQLAlchemy closes an invalidated asyncpg connection gracefully, for up to 2 s)
finishes in the background instead of on the caller's time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from application.errors import DependencyUnavailable

T = TypeVar("T")

# 10 MB/s: 1 s more per 10 MB of payload.
MIN_BYTES_PER_SECOND = 10_000_000


class Deadlines:
    def __init__(self, what: str, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("a store timeout must be positive")
        self._what = what
        self.seconds = float(seconds)
        self._abandoned: set[asyncio.Task[object]] = set()

    def for_payload(self, size_bytes: int) -> float:
        return self.seconds + size_bytes / MIN_BYTES_PER_SECOND

    async def call(self, operation: Callable[[], Awaitable[T]], seconds: float | None = None) -> T:
        """Await `operation()` for at most `seconds` (default: the store timeout)."""
        limit = self.seconds if seconds is None else seconds
        task: asyncio.Task[T] = asyncio.ensure_future(operation())
        try:
            done, _ = await asyncio.wait({task}, timeout=limit)
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        if task in done:
            return task.result()
        self._abandon(task)
        raise DependencyUnavailable(f"{self._what} did not answer within {limit:.1f} s")

    async def close(self) -> None:
        """Wait for the cleanup of abandoned calls (before the driver's pool is disposed)."""
        await asyncio.gather(*self._abandoned, return_exceptions=True)

    def _abandon(self, task: asyncio.Task[T]) -> None:
        task.cancel()
        # Held until done: the loop keeps only weak references to tasks. Its outcome is retrieved
        # so that a late error is not reported as "never retrieved".
        self._abandoned.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[T]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()
