"""Hostile request bodies against the real app: no 5xx, no INTERNAL job, results on their schema.

    PYTHONPATH=src .venv/bin/python bench/fuzz_requests.py [--bodies 5000] [--seed 13] [--failures F]

The bodies are tests/support/hostile_bodies.py's strategies (the ones tests/e2e/test_hostile_numbers.py
runs a few dozen of in CI), drawn by hypothesis from a fixed seed, spread evenly over /train/gbm,
/analyze/segments, /analyze/policies and /analyze/content. Each goes through the production app factory
in process (httpx's ASGI transport, the in-memory job store, inline compute: the same code paths as
the service but the process pool's pickling), and each job is polled to its end. Prints counts by
operation, answer status and error code, wall and CPU seconds; writes the bodies that failed a check
to --failures (JSON lines) and exits 1 if any did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from entrypoints.logging_setup import configure_logging  # noqa: E402
from support.app import make_app, started  # noqa: E402
from support.hostile_bodies import OPERATIONS, Body, outcome, problems  # noqa: E402


def fuzz(
    path: str, bodies: int, random_seed: int, runner: asyncio.Runner, client: object
) -> tuple[Counter[str], list[dict[str, object]]]:
    counts: Counter[str] = Counter()
    failures: list[dict[str, object]] = []

    @seed(random_seed)
    @settings(
        max_examples=bodies,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(OPERATIONS[path])
    def one(body: Body) -> None:
        result = runner.run(outcome(client, body))  # type: ignore[arg-type]
        counts[result.label] += 1
        found = problems(body, result)
        if found:
            counts["PROBLEM"] += 1
            failures.append({"path": path, "problems": found, "body": body.raw.decode()[:20_000]})

    one()
    return counts, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=int, default=5000, help="in total, spread over the 4 operations")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--failures", type=Path, default=Path("fuzz-failures.jsonl"))
    parser.add_argument("--only", choices=sorted(OPERATIONS), help="one operation")
    args = parser.parse_args()
    paths = [args.only] if args.only else list(OPERATIONS)
    per_operation = max(1, args.bodies // len(paths))
    failures: list[dict[str, object]] = []
    total = Counter[str]()
    # The log keeps the errors (an INTERNAL job's traceback), not a line per request.
    configure_logging("error", "json")
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        client = runner.run(stack.enter_async_context(started(make_app(log_level="error"))))
        try:
            for path in paths:
                wall, cpu = time.perf_counter(), time.process_time()
                counts, found = fuzz(path, per_operation, args.seed, runner, client)
                failures += found
                total.update({f"{path} {label}": n for label, n in counts.items()})
                bodies = sum(n for label, n in counts.items() if label != "PROBLEM")
                print(
                    f"{path}: {bodies} bodies in {time.perf_counter() - wall:.1f} s wall, "
                    f"{time.process_time() - cpu:.1f} s CPU, {counts['PROBLEM']} with problems",
                    flush=True,
                )
                for label, n in sorted(counts.items()):
                    if label != "PROBLEM":
                        print(f"    {n:6d}  {label}")
        finally:
            runner.run(stack.aclose())
    bodies = sum(n for label, n in total.items() if not label.endswith("PROBLEM"))
    five_xx = sum(n for label, n in total.items() if label.split()[1].startswith("5"))
    internal = sum(n for label, n in total.items() if label.endswith(("INTERNAL", "WORKER_LOST")))
    print(
        f"total: {bodies} bodies, {five_xx} answered 5xx, {internal} INTERNAL/WORKER_LOST, "
        f"{len(failures)} with problems; load average {os.getloadavg()[0]:.2f}"
    )
    if failures:
        with args.failures.open("w") as out:
            for failure in failures:
                out.write(json.dumps(failure) + "\n")
        print(f"failing bodies written to {args.failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
