"""The estimates and the budget (domain/budget.py) and where the replica's limit comes from
(adapters/compute/memory_budget.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.compute.memory_budget import RAM_SHARE, memory_limit_bytes
from domain.budget import (
    MB,
    WORKER_IDLE,
    ResourceBudget,
    ResourceLimitExceeded,
    estimate_content,
    estimate_gbm,
    estimate_policies,
    estimate_segmentation,
    gbm_bytes_per_bin,
    task_budget,
)

GIB = 1 << 30
POD = task_budget(4 * GIB, workers=1, max_model_bytes=50 * MB)


def _gbm(**shape: int) -> tuple[int, int]:
    defaults = {
        "rows": 1_000_000,
        "columns": 20,
        "max_bin": 255,
        "num_leaves": 31,
        "num_iterations": 100,
        "min_data_in_leaf": 20,
    }
    estimate = estimate_gbm(**(defaults | shape))
    POD.check  # noqa: B018 - the budget the tests hold estimates to
    return estimate.memory_bytes, estimate.model_bytes


def test_the_bench_training_fits_a_4_gib_pod_with_one_or_two_workers() -> None:
    for workers in (1, 2):
        budget = task_budget(4 * GIB, workers=workers, max_model_bytes=50 * MB)
        budget.check(
            estimate_gbm(
                rows=1_000_000,
                columns=20,
                max_bin=255,
                num_leaves=31,
                num_iterations=100,
                min_data_in_leaf=20,
            )
        )


def test_the_histogram_bomb_is_refused_for_memory_naming_the_parameters_and_the_setting() -> None:
    estimate = estimate_gbm(
        rows=40_000, columns=20, max_bin=65535, num_leaves=4096, num_iterations=100, min_data_in_leaf=1
    )
    # num_leaves x total_bins x 16: 4096 x 20 x 13,333 bins (40,000 rows / 3 per bin) x 16 bytes.
    assert estimate.memory_bytes > 4096 * 20 * 13_333 * 16
    with pytest.raises(ResourceLimitExceeded) as caught:
        POD.check(estimate)
    assert caught.value.code == "RESOURCE_LIMIT"
    assert "ML_WORKER_MEMORY_LIMIT_MB" in caught.value.message
    advice = {d["field"]: d["message"] for d in caught.value.details}
    assert advice["params.num_leaves"].startswith("lower")
    assert advice["params.min_data_in_leaf"].startswith("raise")


def test_the_model_bomb_is_refused_for_its_size_alone() -> None:
    estimate = estimate_gbm(
        rows=20_000, columns=10, max_bin=255, num_leaves=4096, num_iterations=200, min_data_in_leaf=1
    )
    assert estimate.memory_bytes < (POD.memory_bytes or 0)
    with pytest.raises(ResourceLimitExceeded) as caught:
        POD.check(estimate)
    assert "ML_WORKER_MAX_MODEL_MB" in caught.value.message
    assert "ML_WORKER_MEMORY_LIMIT_MB" not in caught.value.message


def test_leaves_are_capped_by_rows_over_min_data_in_leaf_and_bins_by_rows() -> None:
    # 100 rows with 20 per leaf make at most 5 leaves whatever num_leaves says.
    assert _gbm(rows=100, num_leaves=4096)[1] == _gbm(rows=100, num_leaves=5)[1]
    assert _gbm(rows=300, max_bin=65535)[0] == _gbm(rows=300, max_bin=100)[0]
    assert _gbm(num_iterations=200)[1] == 2 * _gbm(num_iterations=100)[1]


def test_bytes_per_binned_value() -> None:
    assert [gbm_bytes_per_bin(b) for b in (255, 256, 257, 65535, 65536, 70000)] == [1, 1, 2, 2, 2, 4]


def test_the_budget_splits_what_the_server_leaves_among_workers() -> None:
    one, two = task_budget(4 * GIB, 1, None), task_budget(4 * GIB, 2, None)
    assert one.process_bytes is not None and two.process_bytes is not None
    assert two.process_bytes == one.process_bytes // 2
    assert one.memory_bytes == one.process_bytes - WORKER_IDLE
    # A tiny limit still leaves a task room for the smallest work, and no limit means none.
    assert (task_budget(256 * MB, 4, None).memory_bytes or 0) >= 128 * MB
    assert task_budget(None, 2, 50 * MB) == ResourceBudget(model_bytes=50 * MB)


def test_the_analyses_estimates_grow_with_what_multiplies_rows() -> None:
    small = estimate_segmentation(
        rows=100_000, numeric=10, categorical=0, max_categories=10, max_clusters=8, sample=10_000
    )
    wide = estimate_segmentation(
        rows=100_000, numeric=10, categorical=20, max_categories=100, max_clusters=8, sample=10_000
    )
    assert small.memory_bytes < 200 * MB < wide.memory_bytes
    POD.check(small)
    POD.check(estimate_content(rows=50_000, text_fields=4))
    POD.check(estimate_policies(rows=5_000_000))
    with pytest.raises(ResourceLimitExceeded):
        POD.check(estimate_content(rows=5_000_000, text_fields=4))


def test_the_memory_limit_comes_from_the_setting_then_cgroup_v2_then_v1_then_ram(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       8000000 kB\nMemFree: 1 kB\n")
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("4294967296\n")
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("2147483648\n")
    unlimited = tmp_path / "unlimited"
    (unlimited / "memory").mkdir(parents=True)
    (unlimited / "memory.max").write_text("max\n")
    (unlimited / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")

    assert memory_limit_bytes(1000, v2, meminfo) == 1000 * MB
    assert memory_limit_bytes(None, v2, meminfo) == 4 * GIB
    assert memory_limit_bytes(None, v1, meminfo) == 2 * GIB
    assert memory_limit_bytes(None, unlimited, meminfo) == int(8_000_000 * 1024 * RAM_SHARE)
    assert memory_limit_bytes(None, tmp_path / "none", tmp_path / "no-meminfo") is None
