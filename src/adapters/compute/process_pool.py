"""A pool of long-lived worker processes that runs CPU-bound tasks off the event loop.

Each worker is its own process with a pipe, so one task can be stopped (cancel, timeout) by
terminating its process, and a worker that dies is noticed at once (end of pipe) and replaced.
Processes start with forkserver, never fork: LightGBM's OpenMP runtime hangs in a child forked
after its threads started. A task's frames do not go through the pipe: they are files in shared
memory (shared_frames.py), removed here when the task ends, whatever ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as mp_wait
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

import structlog

from adapters.compute.shared_frames import SharedFrames, TaskPayload
from adapters.compute.worker_main import worker_loop
from application.errors import (
    Busy,
    OutOfMemory,
    TaskCancelled,
    TaskTimedOut,
    WorkerLost,
    error_from_code,
)
from application.ports import ComputeRunner, PoolCapacity, Reservation
from domain.errors import InternalFailure

R = TypeVar("R")
log = structlog.get_logger(__name__)

_KILL_GRACE_S = 1.0


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection

    @property
    def alive(self) -> bool:
        return self.process.is_alive() and not self.conn.closed

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(_KILL_GRACE_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(_KILL_GRACE_S)


@dataclass(eq=False)
class _Place(Reservation):
    pool: ProcessPoolRunner
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.pool._queued -= 1


class ProcessPoolRunner(ComputeRunner):
    def __init__(
        self,
        *,
        workers: int,
        threads_per_task: int,
        queue_limit: int,
        start_method: str = "forkserver",
        preload: tuple[str, ...] = (),
        frames: SharedFrames | None = None,
        memory_limit_bytes: int | None = None,
    ) -> None:
        self._preload = preload
        self._frames = frames or SharedFrames()
        # Each compute process's resident size is held under this (the watchdog in `_exchange`).
        self._memory_limit = memory_limit_bytes
        self._size = workers
        self._threads = threads_per_task
        self._queue_limit = queue_limit
        self._context: Any = mp.get_context(start_method)
        self._idle: asyncio.Queue[_Worker] | None = None
        self._workers: set[_Worker] = set()
        self._queued = 0
        self._busy = 0
        self._closed = False

    async def start(self) -> None:
        self._idle = asyncio.Queue()
        swept = await asyncio.to_thread(self._frames.sweep)
        if swept:
            log.info("compute_stale_frames_removed", files=[str(p) for p in swept])
        spawned = await asyncio.gather(*(asyncio.to_thread(self._spawn) for _ in range(self._size)))
        for worker in spawned:
            self._idle.put_nowait(worker)

    async def close(self) -> None:
        self._closed = True
        for worker in list(self._workers):
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in list(self._workers)))
        self._workers.clear()

    def _spawn(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_loop,
            args=(child_end, self._threads, self._preload),
            name="ml-worker-compute",
            daemon=True,
        )
        process.start()
        child_end.close()
        worker = _Worker(process=process, conn=parent_end)
        self._workers.add(worker)
        return worker

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def process_memory(self) -> dict[int, int]:
        # Only the live: a dead worker not yet replaced is a zombie until reaped, and reads as 0. A
        # copy of the set: a replacement is spawned (added to it) in another thread.
        live = [w.process.pid for w in list(self._workers) if w.alive and w.process.pid is not None]
        sizes = {pid: resident_bytes(pid) for pid in live}
        return {pid: size for pid, size in sizes.items() if size}

    def capacity(self) -> PoolCapacity:
        return PoolCapacity(
            workers=self._size,
            threads_per_task=self._threads,
            busy=self._busy,
            queued=max(0, self._queued - self._busy),
            queue_limit=self._queue_limit,
        )

    def reserve(self) -> Reservation:
        # A place is either a worker or a queue slot: beyond both, answer BUSY rather than hang.
        if self._closed or self._queued >= self._size + self._queue_limit:
            raise Busy("all compute workers are busy and the queue is full; retry later")
        self._queued += 1
        return _Place(self)

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
        if self._idle is None:
            raise InternalFailure("the compute pool has not been started")
        place = reservation or self.reserve()
        payload: TaskPayload | None = None
        called = time.monotonic()
        try:
            payload = await self._dump(task, args)
            worker = await self._acquire(cancel_event, start_within)
            if start_within is not None and timeout is not None:
                timeout = max(0.0, timeout - (time.monotonic() - called))
            if on_start is not None:
                try:
                    await on_start()
                except BaseException:
                    place.release()
                    await self._give_back(worker)
                    raise
            self._busy += 1
            try:
                return await self._execute(worker, payload, on_progress, timeout, cancel_event)  # type: ignore[no-any-return]
            finally:
                self._busy -= 1
                place.release()
                await self._give_back(worker)
        finally:
            place.release()
            if payload is not None:
                await self._discard(payload)

    async def _dump(self, task: Callable[..., Any], args: tuple[Any, ...]) -> TaskPayload:
        writing = asyncio.ensure_future(asyncio.to_thread(self._frames.dumps, (task, args)))
        try:
            payload = await asyncio.shield(writing)
        except asyncio.CancelledError:
            # The thread cannot be stopped: the files it is writing go when it is done.
            writing.add_done_callback(_discard_when_written)
            raise
        if payload.piped_frames:
            log.warning(
                "compute_frames_through_pipe",
                frames=payload.piped_frames,
                directories=[str(d) for d in self._frames.directories],
                reason="no room for the frame in any of the directories",
            )
        return payload

    @staticmethod
    async def _discard(payload: TaskPayload) -> None:
        # In a thread: unlinking a large file on tmpfs frees its pages (about 30 ms per 160 MB
        # measured here), and /health must not wait for that. Shielded so a second cancellation
        # of the caller still lets the removal finish.
        if payload.files:
            await asyncio.shield(asyncio.to_thread(payload.remove))

    async def _acquire(self, cancel_event: asyncio.Event | None, start_within: float | None) -> _Worker:
        assert self._idle is not None
        getter = asyncio.ensure_future(self._idle.get())
        if cancel_event is None and start_within is None:
            return await self._ensure_alive(await getter)
        canceller = asyncio.ensure_future(cancel_event.wait()) if cancel_event is not None else None
        try:
            waiters: set[asyncio.Future[Any]] = {getter} | ({canceller} if canceller else set())
            await asyncio.wait(waiters, timeout=start_within, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # asyncio.wait does not cancel what it waits for: a getter left pending would later take
            # a worker that nobody gives back, and the pool would shrink for good.
            self._abandon(getter)
            raise
        finally:
            if canceller is not None:
                canceller.cancel()
        if not getter.done():
            self._abandon(getter)
            if cancel_event is not None and cancel_event.is_set():
                raise TaskCancelled("cancelled while queued")
            raise Busy(f"no compute slot became free within {start_within:g} s; retry later")
        return await self._ensure_alive(getter.result())

    def _abandon(self, getter: asyncio.Future[_Worker]) -> None:
        assert self._idle is not None
        if getter.done() and not getter.cancelled() and getter.exception() is None:
            self._idle.put_nowait(getter.result())
        else:
            getter.cancel()

    async def _ensure_alive(self, worker: _Worker) -> _Worker:
        """An idle worker may have died (killed, out of memory): replace it rather than fail a task."""
        if worker.alive:
            return worker
        self._workers.discard(worker)
        await asyncio.to_thread(worker.stop)
        return await asyncio.to_thread(self._spawn)

    async def _give_back(self, worker: _Worker) -> None:
        assert self._idle is not None
        if worker.alive:
            self._idle.put_nowait(worker)
            return
        self._workers.discard(worker)
        await asyncio.to_thread(worker.stop)
        if not self._closed:
            self._idle.put_nowait(await asyncio.to_thread(self._spawn))

    async def _execute(
        self,
        worker: _Worker,
        payload: TaskPayload,
        on_progress: Callable[[float, str], None] | None,
        timeout: float | None,
        cancel_event: asyncio.Event | None,
    ) -> Any:
        loop = asyncio.get_running_loop()

        def relay(fraction: float, message: str) -> None:
            if on_progress is not None:
                loop.call_soon_threadsafe(on_progress, fraction, message)

        # The exchange runs in a thread on the pipe in blocking mode. An event-loop reader would not
        # do: uvloop switches a watched descriptor to non-blocking, and a large task then fails to
        # send with EAGAIN (and a large result could fail to arrive the same way).
        stop_reading = threading.Event()
        exchange = asyncio.ensure_future(
            asyncio.to_thread(_exchange, worker, payload, relay, stop_reading, self._memory_limit)
        )
        canceller = asyncio.ensure_future(cancel_event.wait()) if cancel_event else None
        started = time.monotonic()
        try:
            waiters: set[asyncio.Future[Any]] = {exchange} | ({canceller} if canceller else set())
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await self._stop_exchange(worker, exchange, stop_reading)
            raise
        finally:
            if canceller is not None:
                canceller.cancel()
        if not exchange.done():
            # Cancelled or out of time: ending the process is the only sure way to stop native code.
            await self._stop_exchange(worker, exchange, stop_reading)
            if cancel_event is not None and cancel_event.is_set():
                raise TaskCancelled("the task was cancelled")
            raise TaskTimedOut(f"the task did not finish within {time.monotonic() - started:.0f} s")
        reply = exchange.result()
        kind = reply[0]
        if kind == "ok":
            return reply[1]
        if kind == "error":
            raise error_from_code(reply[1], reply[2], reply[3])
        if kind == "crash":
            log.error("compute_task_crashed", error=reply[1], traceback=reply[2])
            raise InternalFailure(reply[1])
        if kind == "oom":
            log.warning("compute_task_out_of_memory", pid=worker.process.pid, rss_bytes=reply[1])
            await asyncio.to_thread(worker.stop)
            raise OutOfMemory(
                f"the task grew past the {reply[2] / 2**20:.0f} MB each compute process may use and "
                "was stopped; send less data or smaller parameters (ML_WORKER_MEMORY_LIMIT_MB)"
            )
        log.error(
            "compute_worker_lost", pid=worker.process.pid, exitcode=worker.process.exitcode, reason=reply[1]
        )
        await asyncio.to_thread(worker.stop)
        raise WorkerLost("the compute process running the task died (killed or out of memory)")

    @staticmethod
    async def _stop_exchange(
        worker: _Worker, exchange: asyncio.Future[Any], stop_reading: threading.Event
    ) -> None:
        stop_reading.set()
        await asyncio.to_thread(worker.stop)
        with contextlib.suppress(BaseException):
            await exchange


_POLL_S = 0.25
_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes(pid: int) -> int | None:
    """The resident size of a process (None when it is gone): one small read of /proc."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _discard_when_written(writing: asyncio.Future[TaskPayload]) -> None:
    if not writing.cancelled() and writing.exception() is None:
        asyncio.get_running_loop().run_in_executor(None, writing.result().remove)


def _exchange(
    worker: _Worker,
    payload: TaskPayload,
    relay: Callable[[float, str], None],
    stop: threading.Event,
    memory_limit: int | None = None,
) -> tuple[Any, ...]:
    """Send the task and wait for its reply, relaying progress. Runs in a thread. With a memory
    limit, the process is ended as soon as a poll sees it resident past the limit: RLIMIT_AS cannot
    serve (OpenMP and the allocators reserve far more address space than they touch) and the kernel's
    OOM killer would take the whole replica."""
    try:
        worker.conn.send_bytes(payload.data)
    except (OSError, EOFError) as exc:
        return ("lost", f"sending the task: {exc!r}")
    pid = worker.process.pid
    while not stop.is_set():
        # Each turn (every poll, and every progress message) reads the size.
        if memory_limit is not None and pid is not None:
            rss = resident_bytes(pid)
            if rss is not None and rss > memory_limit:
                worker.process.kill()  # at once: it may be growing by a GB a second
                return ("oom", rss, memory_limit)
        try:
            ready = mp_wait([worker.conn, worker.process.sentinel], timeout=_POLL_S)
            if worker.conn in ready:
                message = worker.conn.recv()
                if message[0] == "progress":
                    relay(message[1], message[2])
                    continue
                return tuple(message)
            # The pipe alone cannot tell a death: another process may hold its other end open.
            if worker.process.sentinel in ready and not worker.conn.poll():
                return ("lost", "the process exited")
        except (OSError, EOFError) as exc:
            return ("lost", f"pipe: {exc!r}")
    return ("lost", "stopped")
