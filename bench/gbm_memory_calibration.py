"""Calibrate the GBM resource estimate (domain/budget.py) against real trainings.

Each shape trains in a fresh process (the way a compute worker runs it) and reports the process's peak
RSS over its RSS before training, and the size of the modelState JSON, next to the estimate:

    PYTHONPATH=src .venv/bin/python bench/gbm_memory_calibration.py
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import sys
from typing import Any

SHAPES: list[dict[str, Any]] = [
    {"rows": 20_000, "cols": 10, "num_leaves": 31, "max_bin": 255, "trees": 100, "min_leaf": 20},
    {"rows": 200_000, "cols": 20, "num_leaves": 31, "max_bin": 255, "trees": 100, "min_leaf": 20},
    {"rows": 1_000_000, "cols": 20, "num_leaves": 31, "max_bin": 255, "trees": 100, "min_leaf": 20},
    {"rows": 40_000, "cols": 20, "num_leaves": 255, "max_bin": 4095, "trees": 20, "min_leaf": 1},
    {"rows": 40_000, "cols": 20, "num_leaves": 1024, "max_bin": 1023, "trees": 5, "min_leaf": 1},
    {"rows": 20_000, "cols": 10, "num_leaves": 255, "max_bin": 255, "trees": 50, "min_leaf": 5},
]


def _train(shape: dict[str, Any], queue: Any) -> None:
    import numpy as np
    import polars as pl

    from adapters.frames import PolarsDataset
    from adapters.gbm.trainer import LightGbmTrainer
    from domain.gbm.training import GbmParams, GbmTrainingSpec
    from entrypoints.presenters.wire import json_ready

    rng = np.random.default_rng(0)
    x = rng.normal(size=(shape["rows"], shape["cols"]))
    y = (x[:, 0] + rng.normal(size=shape["rows"]) > 0).astype(np.int64)
    frame = pl.DataFrame({f"x{i}": x[:, i] for i in range(shape["cols"])} | {"label": y})
    del x
    spec = GbmTrainingSpec(
        label="label",
        validation_fraction=0.2,
        params=GbmParams(
            num_iterations=shape["trees"],
            num_leaves=shape["num_leaves"],
            max_bin=shape["max_bin"],
            min_data_in_leaf=shape["min_leaf"],
        ),
    )
    import gc
    import os

    gc.collect()
    with open("/proc/self/statm") as statm:
        before = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    outcome = LightGbmTrainer(num_threads=1).train(PolarsDataset(frame), spec, lambda *_: None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    model = len(json.dumps(json_ready(outcome.model_state)))
    queue.put({"before": before, "peak": peak, "model": model, "trees": outcome.metrics.num_trees})


def main() -> None:
    from domain.budget import estimate_gbm

    ctx = mp.get_context("spawn")
    print(
        f"{'shape':<44} {'base MB':>8} {'growth MB':>9} {'est MB':>8} {'ratio':>6} "
        f"{'model MB':>9} {'est MB':>8} {'ratio':>6}"
    )
    for shape in SHAPES:
        queue = ctx.Queue()
        process = ctx.Process(target=_train, args=(shape, queue))
        process.start()
        got = queue.get()
        process.join()
        estimate = estimate_gbm(
            rows=shape["rows"],
            columns=shape["cols"],
            max_bin=shape["max_bin"],
            num_leaves=shape["num_leaves"],
            num_iterations=shape["trees"],
            min_data_in_leaf=shape["min_leaf"],
        )
        growth = got["peak"] - got["before"]
        name = "{rows}x{cols} L{num_leaves} B{max_bin} T{trees} m{min_leaf}".format(**shape)
        print(
            f"{name:<44} {got['before'] / 2**20:8.0f} {growth / 2**20:9.1f} "
            f"{estimate.memory_bytes / 2**20:8.1f} {estimate.memory_bytes / max(growth, 1):6.2f} "
            f"{got['model'] / 2**20:9.2f} {estimate.model_bytes / 2**20:8.2f} "
            f"{estimate.model_bytes / max(got['model'], 1):6.2f}",
            flush=True,
        )
    sys.exit(0)


if __name__ == "__main__":
    main()
