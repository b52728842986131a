"""What a baseline is in these benches: the library as its users run it. A fresh process, the
caller's environment without any OpenMP or thread-pool variable of ours, LightGBM's own defaults.

The OpenMP settings beside it are the ones bench/omp_wait.py compares; a bench reports the plain
baseline and the best of these, so a setting that helps under contention cannot hide a slow service
(or a slowed baseline a slow service).
"""

from __future__ import annotations

import os

OUR_VARIABLE_PREFIXES = ("OMP_", "GOMP_", "KMP_", "OPENBLAS_", "MKL_", "POLARS_", "ML_WORKER_")

OMP_SETTINGS: dict[str, dict[str, str]] = {
    "default (no variable)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "GOMP_SPINCOUNT=3000": {"GOMP_SPINCOUNT": "3000"},  # the compute workers' setting
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=100000": {"GOMP_SPINCOUNT": "100000"},
}
PLAIN = "default (no variable)"


def plain_env(**extra: str) -> dict[str, str]:
    """The caller's environment without our variables, plus `extra` (the setting under test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_VARIABLE_PREFIXES)}
    return {**env, **extra}
