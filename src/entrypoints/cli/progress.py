"""Progress of an offline command on stderr, kept moving while the computation runs."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

R = TypeVar("R")

REDRAW_SECONDS = 0.2


class Progress:
    """Progress on stderr: a redrawn bar on a terminal; elsewhere (a log, CI) an occasional line,
    so a long run shows it is alive without flooding the log. `fraction=None` means unknown."""

    BAR_WIDTH = 30
    LINE_STEP = 0.25  # a line at every quarter...
    LINE_SECONDS = 10.0  # ...or when this long has passed since the last line

    def __init__(
        self,
        label: str,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._clock = clock
        self._started = clock()
        self._last_line_at = self._started
        self._last_step = 0
        self._drawn = False
        self._fraction: float | None = None
        self._message = ""

    def update(self, fraction: float | None, message: str = "") -> None:
        self._fraction, self._message = fraction, message
        elapsed = self._clock() - self._started
        if self._tty:
            self._draw(fraction, message, elapsed)
            return
        step = int((fraction or 0.0) / self.LINE_STEP)
        now = self._clock()
        if step > self._last_step or now - self._last_line_at >= self.LINE_SECONDS:
            self._last_step = max(step, self._last_step)
            self._last_line_at = now
            done = f"{fraction:.0%}" if fraction is not None else "running"
            tail = f" {message}" if message else ""
            self._stream.write(f"{self._label}: {done} ({elapsed:.0f} s){tail}\n")
            self._stream.flush()

    def redraw(self) -> None:
        """The last report again: the bar's clock moves, a log gets its line every LINE_SECONDS."""
        self.update(self._fraction, self._message)

    def _draw(self, fraction: float | None, message: str, elapsed: float) -> None:
        if fraction is None:
            # Unknown progress: a block sweeping across the bar.
            position = int(elapsed * 8) % self.BAR_WIDTH
            bar = "".join("#" if abs(i - position) < 3 else "-" for i in range(self.BAR_WIDTH))
            done = "    "
        else:
            fraction = min(1.0, max(0.0, fraction))
            filled = round(fraction * self.BAR_WIDTH)
            bar = "#" * filled + "-" * (self.BAR_WIDTH - filled)
            done = f"{fraction:4.0%}"
        line = f"{self._label} [{bar}] {done} {elapsed:5.0f} s {message}"
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self._stream.write("\r" + line[:width].ljust(width))
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            # Leave the terminal clean for the summary.
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False


async def showing_progress(work: Awaitable[R], progress: Progress) -> R:
    """Await `work`, redrawing `progress` meanwhile: a computation reports only when it has news
    (training never does), and the display must still show that it is alive."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=REDRAW_SECONDS)
            if done:
                return task.result()
            progress.redraw()
    finally:
        task.cancel()
