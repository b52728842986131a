"""Work that is only worth finishing while its client waits for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import ClientDisconnect, Request

T = TypeVar("T")


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Awaits `work` while listening for `http.disconnect`; a client that goes away cancels it.

    A synchronous training's only reader is its caller: one that hung up (a timeout, a crash, a
    redeploy) left its training running on for a minute, holding a compute slot that other calls
    waited for. Cancelling reaches the compute pool, which stops the worker process running it.
    Call it once the body is read: the next message the server has for this request is then the
    disconnect, or nothing until the answer is sent."""
    task = asyncio.ensure_future(work)
    listener = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, listener}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        listener.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task  # until the pool has stopped the process and the slot is free
    raise ClientDisconnect()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
