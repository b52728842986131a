"""How many CPUs this process may use: the cgroup limit when there is one, else the CPU count."""

from __future__ import annotations

import math
import os
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
