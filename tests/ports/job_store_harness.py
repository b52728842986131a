"""The harness the JobStore suites run each adapter through (the shared fake clock and a store factory)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from application.ports import JobStore
from support.clock import FakeClock

# The Redis store's reaping batch in tests: small, so that reaping a hundred-odd jobs takes several.
REDIS_REAP_BATCH = 50


StoreFactory = Callable[..., Awaitable[JobStore]]


@dataclass
class StoreHarness:
    """One adapter under test. `make` builds another started store over the same data (another
    replica, or other TTLs); `elapse` moves time for the store: the fake clock, plus real sleep for
    stores whose expiry is native (Redis key TTLs do not know the fake clock)."""

    kind: str
    clock: FakeClock
    make: StoreFactory
    native_expiry: bool
    shared_between_instances: bool
    stores: list[JobStore] = field(default_factory=list)

    async def elapse(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if self.native_expiry:
            await asyncio.sleep(seconds)
