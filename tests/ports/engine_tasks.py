"""Compute tasks for the job-engine tests: module level, so pool workers can import them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


def pid_then_sleep(pid_file: str, seconds: float, *, progress: Callable[..., None]) -> dict[str, Any]:
    with open(pid_file, "w") as out:
        out.write(str(os.getpid()))
    progress(0.1, "sleeping")
    time.sleep(seconds)
    return {"slept": seconds}
