"""The start command on the platform's page, `python -m uvicorn app.main:app`, serves the same service
as `ml-worker serve`: both read the environment and a `.env` in the working directory, run the
lifespan (job store, compute pool) and answer /health with the same body."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.eventually import eventually_sync
from support.server import free_port, get_health

ROOT = Path(__file__).resolve().parents[2]
ML_WORKER = Path(sys.executable).with_name("ml-worker")


def _environment() -> dict[str, str]:
    # Nothing of ours from the caller's environment: what the service sees comes from `.env`.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ML_WORKER_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@contextlib.contextmanager
def _running(command: list[str], cwd: Path) -> Iterator[dict[str, Any]]:
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    port = int(command[command.index("--port") + 1])

    def answer() -> dict[str, Any] | None:
        if proc.poll() is not None:
            output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"{command} exited with {proc.returncode}:\n{output}")
        status, body = get_health(port)
        return body if status == 200 else None

    try:
        yield eventually_sync(
            answer, lambda body: body is not None, timeout=90, interval=0.25, what="/health"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_uvicorn_app_main_serves_what_ml_worker_serve_serves(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "ML_WORKER_WORKERS=1\nML_WORKER_THREADS_PER_TASK=1\nML_WORKER_QUEUE_LIMIT=3\n"
    )
    uvicorn_command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]
    with _running([*uvicorn_command, "--port", str(free_port())], tmp_path) as documented:
        pass
    with _running(
        [str(ML_WORKER), "serve", "--host", "127.0.0.1", "--port", str(free_port())], tmp_path
    ) as primary:
        pass
    assert documented["status"] == "ok"
    assert sorted(documented["capabilities"]) == [
        "content_analysis",
        "drift_analysis",
        "gbm_training",
        "policy_analysis",
        "segmentation",
    ]
    # `.env` was read: one compute process, one thread, a queue of 3, as the file says.
    assert (documented["compute"]["workers"], documented["compute"]["threadsPerTask"]) == (1, 1)
    assert documented["compute"]["queueLimit"] == 3
    assert documented == primary
