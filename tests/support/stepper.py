"""A task the test moves on one progress report at a time, so no test waits for a task's work."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

# Bounds a task whose test forgot to release it: its thread must not outlive the test run.
_LONGEST_WAIT_S = 30.0


class Stepper:
    """Run by the InlineRunner (it shares this object with the thread; a process pool would not).

    Each `go()` lets the task make its next progress report, ((i + 1) / (steps + 1), "step i+1"); the
    go() after the last report lets it return `result`. A cancel takes effect at the next report, as
    with any task under the InlineRunner; `release()` lets it run to the end (or to that report).
    """

    def __init__(self, steps: int = 3, result: Any = None) -> None:
        self.steps = steps
        self.result = {"steps": steps} if result is None else result
        self.reports = 0
        self.started = threading.Event()
        self.ended = threading.Event()
        self._allowed = 0
        self._condition = threading.Condition()

    def __call__(self, *, progress: Callable[[float, str], None]) -> Any:
        self.started.set()
        try:
            for step in range(self.steps + 1):
                with self._condition:
                    if not self._condition.wait_for(lambda step=step: self._allowed > step, _LONGEST_WAIT_S):
                        raise TimeoutError("the test never let the task go on")
                if step == self.steps:
                    return self.result
                progress((step + 1) / (self.steps + 1), f"step {step + 1}")
                self.reports += 1
            raise AssertionError("unreachable")
        finally:
            self.ended.set()

    def go(self, reports: int = 1) -> None:
        with self._condition:
            self._allowed += reports
            self._condition.notify_all()

    def release(self) -> None:
        self.go(self.steps + 1)
