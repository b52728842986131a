"""How many CPUs this process may use: the cgroup limit when there is one, else the CPU count; and how
many of them a task may take as it starts, from the CPUs other threads hold at that moment.

Standard library only: the compute worker imports it before numpy and OpenMP load."""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def _cgroup_v2_limit(root: Path) -> float | None:
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        limit = int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):  # unreadable or malformed: no limit known
        return None
    return limit if limit > 0 else None


def _cgroup_v1_limit(root: Path) -> float | None:
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def visible_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def cpu_budget(cgroup_root: Path = Path("/sys/fs/cgroup"), override: float | None = None) -> int:
    """Whole CPUs available: a container limit of 1.5 CPUs gives 1 (never 0), so threads never
    oversubscribe the quota, which the kernel enforces by throttling the whole process."""
    limit = override or _cgroup_v2_limit(cgroup_root) or _cgroup_v1_limit(cgroup_root)
    cpus = visible_cpus()
    if limit is None:
        return max(1, cpus)
    return max(1, min(cpus, math.floor(limit)))


@dataclass(frozen=True)
class PoolShape:
    workers: int
    threads_per_task: int


def pool_shape(budget: int, workers: int | None = None, threads: int | None = None) -> PoolShape:
    """Split the budget so that workers x threads never exceeds it. By default one worker gets all
    threads on small budgets (a training then uses every core) and larger budgets run 2-thread
    workers side by side."""
    if workers is None:
        workers = 1 if budget < 4 else budget // 2
    workers = max(1, min(workers, budget))
    if threads is None:
        threads = budget // workers
    threads = max(1, min(threads, budget // workers))
    return PoolShape(workers=workers, threads_per_task=threads)


# The variable through which a compute worker tells the task how many threads it runs with.
TASK_THREADS_VAR = "ML_WORKER_TASK_THREADS"
_LOADAVG = Path("/proc/loadavg")
# One read of the run queue is noisy (a thread that wakes for a microsecond counts), so a few reads
# over ~10 ms and their median: 10 ms is ~3% of a 50,000-row training.
LOAD_SAMPLES = 5
LOAD_SAMPLE_INTERVAL_S = 0.0025


def free_cpus(loadavg: str, visible: int) -> int | None:
    """CPUs that no runnable thread but the reader's holds, from one `/proc/loadavg` text: its 4th
    field is `running/total` host-wide, the reading thread included. None when malformed."""
    try:
        running = int(loadavg.split()[3].split("/")[0])
    except (IndexError, ValueError):
        return None
    return max(0, visible - max(0, running - 1))


def sample_free_cpus(
    read: Callable[[], str] = _LOADAVG.read_text,
    visible: int | None = None,
    samples: int = LOAD_SAMPLES,
    interval_s: float = LOAD_SAMPLE_INTERVAL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> int | None:
    """The median of a few readings of `free_cpus`; None when the file cannot be read."""
    cpus = visible_cpus() if visible is None else visible
    readings: list[int] = []
    for i in range(samples):
        if i:
            sleep(interval_s)
        try:
            free = free_cpus(read(), cpus)
        except OSError:
            free = None
        if free is None:
            return None
        readings.append(free)
    return int(statistics.median_low(readings))


def threads_for_task(budget: int, free: int | None) -> int:
    """`min(budget, free)`, at least 1; the whole budget when the load is unknown. Measured with
    bench/omp_wait.py on 2 cores: 2 threads against a busy core took 2x the time of 1 thread."""
    if free is None:
        return max(1, budget)
    return max(1, min(budget, free))


def task_threads(budget: int | None = None) -> int:
    """Threads the running task may use: what its compute worker chose for it (TASK_THREADS_VAR),
    capped by the caller's own budget. Outside a worker (inline runner, tests): the budget, or 1."""
    try:
        chosen: int | None = max(1, int(os.environ[TASK_THREADS_VAR]))
    except (KeyError, ValueError):
        chosen = None
    if budget is None:
        return chosen or 1
    return max(1, budget if chosen is None else min(budget, chosen))
