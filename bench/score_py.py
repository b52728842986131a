"""Issue 7 benchmark, side by side: LightGBM's predict, the Python reference scorer and the JS scorer.

    .venv/bin/python bench/make_score_fixture.py     # once: bench/results/score_model.json
    .venv/bin/python bench/score_py.py [--fixture PATH] [--no-js]

On the 100-tree, 31-leaf fixture model: rows/s of `Booster.predict(raw_score=True)` one row per call
and on the whole batch (num_threads=1, like the single-threaded scorers), of the Python reference
scorer one row at a time, and (in the same run) of bench/score_js.mjs. Medians of 7 runs; wall-clock
and CPU-time rates, since on a shared machine the CPU-time rate is the code's own cost.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np

from domain.gbm.scorer import load_model

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FIXTURE = REPO / "bench" / "results" / "score_model.json"
RUNS = 7


def rates(work: Callable[[], int]) -> tuple[float, float]:
    """Median wall-clock and CPU-time rows/s of `work` (which returns the rows it scored)."""
    work()
    wall, cpu = [], []
    for _ in range(RUNS):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        rows = work()
        wall.append(rows / (time.perf_counter() - wall_start))
        cpu.append(rows / max(time.process_time() - cpu_start, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE)
    parser.add_argument("--no-js", action="store_true", help="skip the JS scorer (bench/score_js.mjs)")
    args = parser.parse_args()
    if not args.fixture.exists():
        raise SystemExit(f"{args.fixture} is missing: run bench/make_score_fixture.py first")
    fixture = json.loads(args.fixture.read_text(encoding="utf-8"))
    state, rows = fixture["modelState"], fixture["rows"]
    model = load_model(state)
    matrix = np.array([model.encode(row) for row in rows])
    expected = np.array(fixture["rawMargin"])

    booster = lgb.Booster(model_str=_model_text_from_fixture(args.fixture))
    assert np.array_equal(booster.predict(matrix, raw_score=True, num_threads=1), expected)
    assert [model.raw_margin(row) for row in rows[:2000]] == expected[:2000].tolist()

    single = matrix[:2000]
    results: dict[str, tuple[float, float]] = {}

    def lgb_one() -> int:
        for i in range(len(single)):
            booster.predict(single[i : i + 1], raw_score=True, num_threads=1)
        return len(single)

    def lgb_batch() -> int:
        booster.predict(matrix, raw_score=True, num_threads=1)
        return len(matrix)

    def py_one(contributions: bool) -> Callable[[], int]:
        subset = rows[:2000]

        def run() -> int:
            for row in subset:
                model.score(row) if contributions else model.raw_margin(row)
            return len(subset)

        return run

    results["LightGBM predict, one row per call"] = rates(lgb_one)
    results["LightGBM predict, batch"] = rates(lgb_batch)
    results["Python scorer, one row, contributions"] = rates(py_one(True))
    results["Python scorer, one row, raw only"] = rates(py_one(False))

    node = shutil.which("node")
    if node and not args.no_js:
        out = subprocess.run(
            [node, str(REPO / "bench" / "score_js.mjs"), str(args.fixture), "--json"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        js = json.loads(out.stdout)
        for label, key in (
            ("JS scorer, one row, contributions", "oneRowWithContributions"),
            ("JS scorer, one row, raw only", "oneRowRawOnly"),
            ("JS scorer, batch, contributions", "batchWithContributions"),
            ("JS scorer, batch, raw only", "batchRawOnly"),
        ):
            results[label] = (js[key]["wall"], js[key]["cpu"])

    print(f"{fixture['description']}; {len(rows)} rows; lightgbm {lgb.__version__}; median of {RUNS} runs")
    print(f"{'':40}{'wall rows/s':>14}{'CPU rows/s':>14}")
    for label, (wall, cpu) in results.items():
        print(f"{label:40}{wall:>14,.0f}{cpu:>14,.0f}")


def _model_text_from_fixture(path: Path) -> str:
    text = path.with_suffix(".txt")
    if not text.exists():
        raise SystemExit(f"{text} is missing: rerun bench/make_score_fixture.py")
    return text.read_text(encoding="utf-8")


if __name__ == "__main__":
    main()
