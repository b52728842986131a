"""The CPU budget from cgroup v2 and v1 limits, and the pool shape (workers x threads) it allows."""

from __future__ import annotations

import os
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
