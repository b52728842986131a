"""The CPU budget from cgroup v2 and v1 limits, the pool shape (workers x threads) it allows, and the
threads a task gets from the CPUs free as it starts (/proc/loadavg's running threads)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.compute import cpu_budget as budget_module
from adapters.compute.cpu_budget import PoolShape, cpu_budget, pool_shape


@pytest.fixture
def eight_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget_module, "visible_cpus", lambda: 8)


def _v2(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.max").write_text(text)
    return root


def _v1(root: Path, quota: str, period: str) -> Path:
    (root / "cpu").mkdir(parents=True, exist_ok=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(quota)
    (root / "cpu" / "cpu.cfs_period_us").write_text(period)
    return root


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", 8),  # no limit: every visible CPU
        ("400000 100000\n", 4),
        ("150000 100000\n", 1),  # 1.5 CPUs: whole CPUs only, rounded down
        ("50000 100000\n", 1),  # half a CPU: never 0
        ("1600000 100000\n", 8),  # a quota above the visible CPUs: the CPUs
        ("250000 50000", 5),
    ],
)
def test_cgroup_v2_cpu_max(tmp_path: Path, eight_cpus: None, cpu_max: str, expected: int) -> None:
    assert cpu_budget(_v2(tmp_path, cpu_max)) == expected


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [("-1", "100000", 8), ("300000", "100000", 3), ("150000", "100000", 1), ("100000", "0", 8)],
)
def test_cgroup_v1_cfs_quota(
    tmp_path: Path, eight_cpus: None, quota: str, period: str, expected: int
) -> None:
    assert cpu_budget(_v1(tmp_path, quota, period)) == expected


def test_no_cgroup_files_or_garbage_fall_back_to_the_cpu_count(tmp_path: Path, eight_cpus: None) -> None:
    assert cpu_budget(tmp_path / "missing") == 8
    assert cpu_budget(_v2(tmp_path / "garbage", "lots of cpus")) == 8
    assert cpu_budget(_v1(tmp_path / "v1garbage", "x", "y")) == 8


def test_v2_unlimited_falls_through_to_v1(tmp_path: Path, eight_cpus: None) -> None:
    root = _v1(_v2(tmp_path, "max 100000"), "200000", "100000")
    assert cpu_budget(root) == 2


def test_override_wins_over_the_cgroup_and_is_capped_by_visible_cpus(
    tmp_path: Path, eight_cpus: None
) -> None:
    root = _v2(tmp_path, "200000 100000")
    assert cpu_budget(root, override=3.0) == 3
    assert cpu_budget(root, override=0.5) == 1
    assert cpu_budget(root, override=64) == 8


def test_visible_cpus_is_the_affinity_mask() -> None:
    assert budget_module.visible_cpus() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("budget", "workers", "threads", "expected"),
    [
        (1, None, None, PoolShape(1, 1)),
        (2, None, None, PoolShape(1, 2)),
        (3, None, None, PoolShape(1, 3)),
        (4, None, None, PoolShape(2, 2)),
        (8, None, None, PoolShape(4, 2)),
        (8, 3, None, PoolShape(3, 2)),
        (4, 100, None, PoolShape(4, 1)),
        (4, None, 100, PoolShape(2, 2)),
        (2, 1, 1, PoolShape(1, 1)),
        (2, 2, None, PoolShape(2, 1)),
    ],
)
def test_pool_shape_examples(
    budget: int, workers: int | None, threads: int | None, expected: PoolShape
) -> None:
    assert pool_shape(budget, workers, threads) == expected


def test_pool_shape_never_exceeds_the_budget() -> None:
    choices = [None, 1, 2, 3, 4, 5, 7, 8, 16, 33, 100]
    for budget in range(1, 65):
        for workers in choices:
            for threads in choices:
                shape = pool_shape(budget, workers, threads)
                assert shape.workers >= 1 and shape.threads_per_task >= 1
                assert shape.workers * shape.threads_per_task <= budget, (budget, workers, threads, shape)
                if workers is not None:
                    assert shape.workers == min(workers, budget)


# ------------------------------------------------------------------ CPUs free as a task starts


@pytest.mark.parametrize(
    ("loadavg", "visible", "free"),
    [
        ("0.52 0.58 0.59 1/467 12345\n", 2, 2),  # only the reader runs
        ("1.10 0.90 0.70 2/467 12345\n", 2, 1),  # one other thread runs
        ("3.00 2.00 1.00 3/200 999", 2, 0),
        ("9.00 9.00 9.00 17/900 999", 2, 0),  # more runnable threads than CPUs: none free, not < 0
        ("0.00 0.00 0.00 5/900 999", 8, 4),
        ("0.00 0.00 0.00 0/900 999", 4, 4),  # a reader not counted (another kernel): all free
    ],
)
def test_free_cpus_are_the_visible_ones_less_the_other_running_threads(
    loadavg: str, visible: int, free: int
) -> None:
    assert budget_module.free_cpus(loadavg, visible) == free


@pytest.mark.parametrize("text", ["", "0.1 0.2 0.3", "0.1 0.2 0.3 x/100 5", "garbage"])
def test_a_malformed_loadavg_reads_as_unknown(text: str) -> None:
    assert budget_module.free_cpus(text, 2) is None


def _readings(*running: int) -> Callable[[], str]:
    texts = iter(f"0.50 0.40 0.30 {r}/300 4242\n" for r in running)
    return lambda: next(texts)


def test_the_free_cpus_are_the_median_of_a_few_readings_spaced_in_time() -> None:
    slept: list[float] = []
    # One reading catches two passing threads, another none: the median is the steady one-busy.
    free = budget_module.sample_free_cpus(
        _readings(2, 4, 2, 1, 2), visible=2, samples=5, interval_s=0.002, sleep=slept.append
    )
    assert free == 1
    assert slept == [0.002] * 4  # between readings, not before the first


def test_an_unreadable_or_malformed_loadavg_gives_no_free_count() -> None:
    def unreadable() -> str:
        raise FileNotFoundError("/proc/loadavg")

    assert budget_module.sample_free_cpus(unreadable, visible=2, sleep=lambda s: None) is None
    assert budget_module.sample_free_cpus(lambda: "nonsense", visible=2, sleep=lambda s: None) is None


def test_this_machines_loadavg_is_readable() -> None:
    free = budget_module.sample_free_cpus(visible=2, samples=1)
    assert free is not None and 0 <= free <= 2


@pytest.mark.parametrize(
    ("budget", "free", "threads"),
    [(2, 2, 2), (2, 1, 1), (2, 0, 1), (2, 8, 2), (4, 3, 3), (2, None, 2), (1, None, 1)],
)
def test_a_task_gets_the_budget_capped_by_the_free_cpus_and_at_least_one(
    budget: int, free: int | None, threads: int
) -> None:
    assert budget_module.threads_for_task(budget, free) == threads


@pytest.mark.parametrize(
    ("chosen", "budget", "threads"),
    [
        (None, None, 1),  # outside a worker and no budget of its own: one thread
        (None, 4, 4),  # outside a worker: the caller's own budget
        ("2", None, 2),
        ("1", 4, 1),  # the worker chose fewer than the caller's budget
        ("3", 2, 2),  # never above the caller's budget
        ("0", None, 1),
        ("lots", 3, 3),
    ],
)
def test_task_threads_are_the_workers_choice_capped_by_the_callers_budget(
    monkeypatch: pytest.MonkeyPatch, chosen: str | None, budget: int | None, threads: int
) -> None:
    if chosen is None:
        monkeypatch.delenv(budget_module.TASK_THREADS_VAR, raising=False)
    else:
        monkeypatch.setenv(budget_module.TASK_THREADS_VAR, chosen)
    assert budget_module.task_threads(budget) == threads
