"""The check behind .ci/render-docs: a real browser draws both documentation pages from the worker
alone (no internet needed), with every operation of the contract on them and a clean console."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
METHODS = {"get", "post", "put", "delete", "patch"}
# A page drawn with the operations is well past this; a blank or failed one is far below it.
MIN_SCREENSHOT_BYTES = 20_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def chromium(url: str, *extra: str) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and the console messages Chromium logged."""
    run = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=20000", *extra, "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=True,
    )
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return run.stdout, console


def main() -> int:
    contract = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    operations = [
        (path, op["operationId"])
        for path, item in contract["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]
    port = free_port()
    env = {**os.environ, "ML_WORKER_PORT": str(port), "ML_WORKER_API_KEY": "render-docs-key"}
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - read after the server stopped
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/ml-worker"), "serve"],
        env=env, cwd=tempfile.gettempdir(), stdout=log, stderr=subprocess.STDOUT,
    )
    failures: list[str] = []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/health/live")
        screenshot = Path(tempfile.gettempdir()) / "ml-worker-docs.png"
        pages = {
            "/docs": lambda path: f'data-path="{path}"',
            "/redoc": lambda _path: None,
        }
        for page, marker_of in pages.items():
            extra = (f"--screenshot={screenshot}", "--window-size=1280,1600") if page == "/docs" else ()
            dom, console = chromium(base + page, *extra)
            failures += [f"{page}: console: {line}" for line in console]
            for path, operation_id in operations:
                marker = marker_of(path) or f"operation/{operation_id}"
                if marker not in dom:
                    failures.append(f"{page}: {operation_id} ({path}) is not on the page")
            print(f"{page}: {len(dom):,} bytes of DOM, {len(console)} console messages")
        size = screenshot.stat().st_size
        print(f"/docs screenshot: {screenshot} ({size:,} bytes)")
        if size < MIN_SCREENSHOT_BYTES:
            failures.append(f"/docs screenshot is {size} bytes: a blank page")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    if failures:
        log.seek(0)
        print("-- server log\n" + log.read()[-4000:])
    for failure in failures:
        print("FAIL", re.sub(r"\s+", " ", failure)[:300])
    print("render-docs:", "failed" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
