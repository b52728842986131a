from __future__ import annotations

import asyncio
import time

from application.ports import Clock


class SystemClock(Clock):
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
