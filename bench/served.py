"""`ml-worker serve` of this checkout on a free loopback port, for the benches: started with a plain
environment (bench/baseline.py) plus the settings a bench gives it, its process tree's RSS watched
from idle to peak."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from baseline import plain_env

ROOT = Path(__file__).resolve().parents[1]


class Server:
    def __init__(self, **settings: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = plain_env(
            ML_WORKER_PORT=str(self.port), ML_WORKER_HOST="127.0.0.1", ML_WORKER_LOG_LEVEL="warning"
        )
        # This checkout's code: the venv's editable install may point at another worktree's.
        env.update(settings, PYTHONPATH=str(ROOT / "src"))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "w"),  # noqa: SIM115
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.health: dict[str, Any] = {}
        deadline = time.monotonic() + 90
        while not self.health:
            if time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError("server did not start")
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"{self.url}/health", timeout=2)
                if answer.status_code == 200:
                    self.health = answer.json()
                    break
            time.sleep(0.2)
        time.sleep(1.0)  # the compute processes finish importing their libraries
        self.idle_rss = self.rss()
        self.peak_rss = self.idle_rss
        self._stop = threading.Event()
        threading.Thread(target=self._watch_rss, daemon=True).start()

    def rss(self) -> int:
        root = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])

    def _watch_rss(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, self.rss())
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self.process.terminate()
        self.process.wait(30)
