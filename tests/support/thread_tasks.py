"""A compute task that reports the thread pools it runs with. Apart from `support.tasks` because it
imports LightGBM (the system libgomp), scikit-learn's clustering (its vendored libgomp) and numpy
(OpenBLAS): the worker loads them as it unpickles the task, before the task's threads are chosen,
as the preloaded modules of the service are."""

from __future__ import annotations

import os
from collections.abc import Callable

import lightgbm  # noqa: F401  (loads the system libgomp)
import numpy  # noqa: F401  (loads OpenBLAS)
import sklearn.cluster  # noqa: F401  (loads scikit-learn's libgomp)
from threadpoolctl import threadpool_info

from adapters.compute.cpu_budget import TASK_THREADS_VAR


def thread_pools(*, progress: Callable[..., None]) -> dict[str, object]:
    """The task's thread count, and each loaded OpenMP and BLAS library's (by its file)."""
    return {
        "task_threads": os.environ.get(TASK_THREADS_VAR),
        "pools": {info["filepath"]: info["num_threads"] for info in threadpool_info()},
        "apis": sorted({info["internal_api"] for info in threadpool_info()}),
    }
