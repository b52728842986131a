"""How long-running computations report progress, independent of where they run."""

from __future__ import annotations

from typing import Protocol


class ProgressReporter(Protocol):
    def __call__(self, fraction: float, message: str = "") -> None:
        """Report that `fraction` (0..1) of the work is done; `message` says what is happening."""


def no_progress(fraction: float, message: str = "") -> None:
    """A reporter that discards reports, for callers that do not track progress."""


class StageProgress:
    """Maps the 0..1 progress of one stage into its slice [start, end] of the overall progress."""

    def __init__(self, report: ProgressReporter, start: float, end: float) -> None:
        self._report = report
        self._start = start
        self._span = end - start

    def __call__(self, fraction: float, message: str = "") -> None:
        clamped = min(1.0, max(0.0, fraction))
        self._report(self._start + self._span * clamped, message)
