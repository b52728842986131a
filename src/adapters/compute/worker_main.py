"""The loop each pool process runs. Imports only the standard library (and cpu_budget, which does
too) at module level so that the thread settings below are in place before numpy, OpenMP or
LightGBM load (unpickling a task does)."""

from __future__ import annotations

import contextlib
import importlib
import os
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from adapters.compute.cpu_budget import TASK_THREADS_VAR, sample_free_cpus, threads_for_task
from adapters.compute.shared_frames import loads

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS")
PROGRESS_INTERVAL_S = 0.2


# How long an idle OpenMP thread spins before it sleeps, in spins (libgomp reckons ~100 per us).
# Measured on a 2-core machine with bench/omp_wait.py (fresh process per setting, 50,000 x 20,
# 100 trees, 2 threads, median of 5, seconds; "busy" = another process spinning on one core):
#
#   setting                   LightGBM quiet  busy   KMeans quiet  busy
#   default (no variable)            0.333   1.265          0.923  2.474
#   GOMP_SPINCOUNT=300               0.525   0.993          0.700  1.165
#   GOMP_SPINCOUNT=1000              0.412   1.277          0.828  0.885
#   GOMP_SPINCOUNT=3000              0.334   1.734          0.825  1.631
#   GOMP_SPINCOUNT=30000             0.375   2.501          0.900  2.699
#   OMP_WAIT_POLICY=PASSIVE          1.264   0.928          0.895  0.901
#   1 thread, default                0.647   0.673          0.847  1.423
#
# PASSIVE made a quiet training 4x slower; the default spins for ~3 ms and collapses when a core is
# busy. A short bounded spin keeps the quiet speed, and the contended case is handled by running
# fewer threads instead (threads_for_task: 2 threads against a busy core cost 2x the 1-thread time).
# LightGBM's system libgomp and scikit-learn's vendored one both read it once, as they load.
SPIN_COUNT = 3000


def configure_threads(threads: int) -> None:
    for var in _THREAD_VARS:
        os.environ[var] = str(threads)
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    # The forkserver hands down the environment of the process that started the pool (the test
    # process sets PASSIVE for itself): a wait policy would override the spin count's intent.
    os.environ.pop("OMP_WAIT_POLICY", None)
    os.environ[TASK_THREADS_VAR] = str(threads)


def limit_task_threads(threads: int, budget: int) -> contextlib.AbstractContextManager[object]:
    """Run the next task with `threads`: LightGBM and the content forest read TASK_THREADS_VAR
    (task_threads); the OpenMP and BLAS pools of numpy, scipy and scikit-learn are limited here.
    At the full budget the pools are already sized (configure_threads) and no limit is set: a
    threadpoolctl limit costs ~3.5 ms per task, as it looks up the loaded libraries each time."""
    os.environ[TASK_THREADS_VAR] = str(threads)
    if threads >= budget:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    limit: contextlib.AbstractContextManager[object] = threadpool_limits(limits=threads)
    return limit


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
        # Threads for this task from the CPUs free as it starts: a busy core is not worth a thread.
        task_threads = threads_for_task(threads, sample_free_cpus())
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
            with limit_task_threads(task_threads, threads):
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
