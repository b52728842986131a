"""`eventually(...)`: wait for a condition that another thread, process or task makes true."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _failure(what: str, last: Any, timeout: float) -> AssertionError:
    return AssertionError(f"{what} not met within {timeout} s (last seen: {last!r})")


async def eventually(
    probe: Callable[[], T | Awaitable[T]],
    until: Callable[[T], object] = bool,
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    what: str = "condition",
) -> T:
    """Calls `probe` (sync or async) until `until(value)` holds and returns that value; fails
    naming `what` and the last value once `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if until(value):  # type: ignore[arg-type]
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise _failure(what, value, timeout)
        await asyncio.sleep(interval)


def eventually_sync(
    probe: Callable[[], T],
    until: Callable[[T], object] = bool,
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """`eventually` for code without an event loop (servers started in a thread or a process)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise _failure(what, value, timeout)
        time.sleep(interval)
