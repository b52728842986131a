"""Compute tasks for the runner and job-engine tests.

Tasks sent to ProcessPoolRunner are pickled by reference, so they live in a module the worker
process can import (`support.tasks`, see support/__init__.py). Module level imports are standard
library only: the worker loads this module when it unpickles a task, and must stay quick to start.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from domain.errors import WorkerError

# ----------------------------------------------------------------------------- compute tasks


def add(a: int, b: int, *, progress: Callable[..., None]) -> int:
    return a + b


def staged(notes: list[str], pause: float, *, progress: Callable[..., None]) -> str:
    """Reports (i+1)/len(notes) with each note, pausing between reports (longer than the worker's
    0.2 s progress throttle so every report goes through)."""
    for i, note in enumerate(notes):
        progress((i + 1) / len(notes), note)
        if i + 1 < len(notes):
            time.sleep(pause)
    return "done"


def raise_error(
    cls: type[WorkerError], message: str, details: list[dict[str, Any]], *, progress: Callable[..., None]
) -> None:
    raise cls(message, details)


def crash(*, progress: Callable[..., None]) -> None:
    raise ValueError("boom in the task")


def unpicklable_result(*, progress: Callable[..., None]) -> Any:
    return lambda: None


def pid(*, progress: Callable[..., None]) -> int:
    return os.getpid()


def environment(names: list[str], *, progress: Callable[..., None]) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in names}


def announce_then_sleep(seconds: float, *, progress: Callable[..., None]) -> int:
    """Reports its pid as the progress note at once, then sleeps without reporting again (a task
    that cannot be stopped cooperatively)."""
    progress(0.0, str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def sleep_reporting(seconds: float, step: float, *, progress: Callable[..., None]) -> str:
    """Sleeps `seconds` in slices of `step`, reporting the fraction done after each slice."""
    slices = max(1, round(seconds / step))
    for i in range(slices):
        time.sleep(step)
        progress((i + 1) / slices, f"slice {i + 1}")
    return "slept"


def report_until_stopped(stopped: list[str], *, progress: Callable[..., None]) -> dict[str, Any]:
    """Reports every 10 ms for up to 30 s; appends to `stopped` when it ends (threads only: the
    list is shared with the caller when the InlineRunner runs it)."""
    try:
        for i in range(3000):
            time.sleep(0.01)
            progress(i / 3000, "working")
        return {}
    finally:
        stopped.append("stopped")


def job_result(value: int, pause: float, *, progress: Callable[..., None]) -> dict[str, Any]:
    """A job task: reports progress over `pause` seconds, then returns a JSON-able result."""
    steps = 6
    for i in range(steps):
        time.sleep(pause / steps)
        progress((i + 1) / (steps + 1), f"step {i + 1}")
    return {"value": value, "squares": [value * value]}


def job_raises(cls: type[WorkerError], message: str, *, progress: Callable[..., None]) -> dict[str, Any]:
    progress(0.1, "about to fail")
    raise cls(message, [{"field": "data", "message": message}])


# ------------------------------------------------------------- tasks that receive a frame (shm)


def mapped_frame_files() -> list[str]:
    """The task-frame files this process has memory-mapped (from /proc/self/maps)."""
    with open("/proc/self/maps") as maps:
        paths = {line.split(maxsplit=5)[-1].strip() for line in maps if "ml-worker-" in line}
    return sorted(p.removesuffix(" (deleted)") for p in paths)


def frame_files(dataset: Any, *, progress: Callable[..., None]) -> dict[str, Any]:
    """What the worker received: the frame's shape and the files it is mapped from."""
    return {"shape": list(dataset.frame.shape), "mapped": mapped_frame_files()}


def echo_frame(dataset: Any, *, progress: Callable[..., None]) -> dict[str, Any]:
    """The frame as the worker sees it (pickled back through the pipe), and where it came from."""
    return {"frame": dataset.frame, "mapped": mapped_frame_files()}


def echo_frames(*datasets: Any, progress: Callable[..., None]) -> dict[str, Any]:
    return {"frames": [d.frame for d in datasets], "mapped": mapped_frame_files()}


def fail_with_frame(dataset: Any, *, progress: Callable[..., None]) -> None:
    raise ValueError(f"failed holding {mapped_frame_files()}")


def hold_frame(dataset: Any, seconds: float, *, progress: Callable[..., None]) -> int:
    """Reports its pid as the progress note once it holds the frame, then sleeps."""
    progress(0.0, str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def memory_kb() -> dict[str, int]:
    """This process's resident memory by kind (kB): RssAnon is private heap, where a copied frame
    lands; RssShmem and RssFile are mapped pages, which a memory-mapped frame uses instead."""
    return read_memory_kb(os.getpid())


def read_memory_kb(process_id: int) -> dict[str, int]:
    with open(f"/proc/{process_id}/status") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith("Rss"))
    return {name: int(value.split()[0]) for name, value in fields.items()}


def frame_memory(dataset: Any, *, progress: Callable[..., None]) -> dict[str, Any]:
    """Memory once the frame is loaded (before the task reads it) and after it reads every value."""
    loaded = memory_kb()
    total = float(dataset.frame.sum().sum_horizontal()[0])
    return {"loaded": loaded, "touched": memory_kb(), "sum": total, "mapped": mapped_frame_files()}


def gated(gate: str, value: int, *, progress: Callable[..., None]) -> dict[str, Any]:
    """A job task that works until the test creates the file `gate` (at most 30 s), then returns a
    JSON-able result: the test decides when it ends, without timing it."""
    progress(0.1, "waiting for the gate")
    deadline = time.monotonic() + 30
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never opened {gate}")
        time.sleep(0.01)
    return {"value": value, "squares": [value * value]}


def allocate(megabytes: int, hold_seconds: float, *, progress: Callable[..., None]) -> int:
    """Touches `megabytes` of memory (resident, not just reserved) and holds it, reporting progress
    as it goes (the pool's watchdog reads the size at every poll and every progress message)."""
    blocks = []
    for i in range(megabytes):
        blocks.append(bytearray(b"\x01" * (1 << 20)))
        if i % 16 == 0:
            progress(i / megabytes, "allocating")
    time.sleep(hold_seconds)
    return len(blocks)
