"""What the drift reference and the curves add to a training: milliseconds to build
`modelState.reference` (adapters/gbm/reference.py) and the response's `curves` for 20 numeric fields,
at 50,000 and 1,000,000 rows, medians of 5 in one process. Beyond 200,000 rows the reference is
summarised from a seeded sample (REFERENCE_SAMPLE_ROWS), which bounds its cost.

    PYTHONPATH=src .venv/bin/python bench/reference_build.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import polars as pl

from adapters.gbm.curves import training_curves
from adapters.gbm.reference import REFERENCE_SAMPLE_ROWS, drift_reference

FIELDS, REPEATS = 20, 5


def median_ms(work: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(rows: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({f"f{i}": rng.normal(size=rows) for i in range(FIELDS)})
    inputs = [{"name": name, "kind": "numeric"} for name in frame.columns]
    scores = rng.random(rows)
    labels = (rng.random(rows) < scores).astype(float)
    every_row = np.arange(rows)
    reference = median_ms(lambda: drift_reference(frame, inputs, every_row, scores, "training"))
    return reference, median_ms(lambda: training_curves(labels, scores, None))


def main() -> None:
    print(f"{FIELDS} numeric fields, median of {REPEATS}; sample beyond {REFERENCE_SAMPLE_ROWS:,} rows")
    for rows in (50_000, 1_000_000):
        reference, curves = measure(rows)
        print(f"{rows:>9,} rows: reference {reference:7.1f} ms, curves {curves:6.1f} ms")


if __name__ == "__main__":
    main()
