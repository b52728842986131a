"""The loop each pool process runs. Imports only the standard library at module level so that the
thread limits below are in place before numpy, OpenMP or LightGBM load (unpickling a task does)."""

from __future__ import annotations

import contextlib
import importlib
import os
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from adapters.compute.shared_frames import loads

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS")
PROGRESS_INTERVAL_S = 0.2


def configure_threads(threads: int) -> None:
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    # Spinning OpenMP threads starve other processes: measured on a 2-core machine, LightGBM's
    # default policy turned a 0.3 s training into 26-94 s while another process used one core.
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["ML_WORKER_TASK_THREADS"] = str(threads)


def worker_loop(conn: Connection, threads: int, preload: tuple[str, ...] = ()) -> None:
    configure_threads(threads)
    # Import the heavy libraries now, while the worker is idle, not on the first request's clock.
    for module in preload:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    while True:
        try:
            message = loads(conn.recv_bytes())  # frames come memory-mapped, not copied
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if message is None:
            return
        task, args = message
        last_report = 0.0

        def report(fraction: float, note: str = "") -> None:
            nonlocal last_report
            now = time.monotonic()
            # Throttled: a tight loop reporting every iteration must not flood the pipe.
            if now - last_report >= PROGRESS_INTERVAL_S or fraction >= 1.0:
                last_report = now
                conn.send(("progress", float(fraction), str(note)))

        reply: tuple[Any, ...]
        try:
            reply = ("ok", task(*args, progress=report))
        except Exception as exc:  # every failure goes back to the caller, the worker lives on
            code = getattr(exc, "code", None)
            if isinstance(code, str) and hasattr(exc, "message"):
                reply = ("error", code, exc.message, getattr(exc, "details", []))
            else:
                reply = ("crash", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result must not kill the worker silently
            conn.send(("crash", f"result could not be sent: {exc}", traceback.format_exc()))
        # Unmap the frames now: the server has unlinked their files, and shared memory is freed
        # only when the last mapping goes, not at the next task.
        del message, task, args, reply
