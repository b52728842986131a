"""Start the service exactly as the container image does, check /health, stop it with SIGTERM.

The command (ENTRYPOINT + CMD) and the environment (ENV) are read from the Dockerfile's final stage,
so the image and this test cannot drift apart. Only the image's filesystem layout is mapped onto this
machine: the image's virtualenv (VIRTUAL_ENV, /opt/venv) becomes the one running these tests. The
process gets the image's environment only, nothing inherited from the caller (no stray DATABASE_URL
or ML_WORKER_API_KEY; only the host's OpenBLAS CPU workaround passes through), HOME=/nonexistent as
for the image's user, an empty working directory, and a free port through ML_WORKER_PORT.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.eventually import eventually_sync
from support.server import get_health

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
# PATH of the python:3.11-slim base image, which the Dockerfile's ENV PATH extends.
BASE_IMAGE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/nonexistent",  # the image's user has no home directory
}
# Machine-specific workarounds of the test host (not configuration), passed through when present.
HOST_PASSTHROUGH = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
STARTUP_TIMEOUT_S = 60.0
SHUTDOWN_TIMEOUT_S = 30.0


# ------------------------------------------------------------------------------------- Dockerfile parsing


def final_stage(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last stage, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not buf and not line):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            name, _, args = buf.strip().partition(" ")
            instructions.append((name.upper(), args.strip()))
        buf = ""
    starts = [i for i, (name, _) in enumerate(instructions) if name == "FROM"]
    return instructions[starts[-1] :] if starts else instructions


def expand(value: str, env: dict[str, str]) -> str:
    """Docker's ${VAR} / $VAR substitution in ENV values (enough for the forms a Dockerfile uses)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return env.get(name, "")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, value)


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = dict(BASE_IMAGE_ENV)
    for name, args in stage:
        if name != "ENV":
            continue
        tokens = shlex.split(args, posix=True)
        if tokens and "=" not in tokens[0]:  # legacy form: ENV KEY value with spaces
            env[tokens[0]] = expand(args.split(None, 1)[1], env)
            continue
        for token in tokens:
            key, _, value = token.partition("=")
            env[key] = expand(value, env)
    return env


def _exec_form(args: str) -> list[str]:
    if args.startswith("["):
        return list(json.loads(args))
    return ["/bin/sh", "-c", args]


def image_command(stage: list[tuple[str, str]]) -> list[str]:
    entrypoint = [_exec_form(a) for n, a in stage if n == "ENTRYPOINT"]
    cmd = [_exec_form(a) for n, a in stage if n == "CMD"]
    command = (entrypoint[-1] if entrypoint else []) + (cmd[-1] if cmd else [])
    assert command, "the Dockerfile's final stage has no CMD or ENTRYPOINT"
    return command


def image_healthcheck(stage: list[tuple[str, str]]) -> list[str]:
    checks = [a for n, a in stage if n == "HEALTHCHECK"]
    assert checks, "the Dockerfile's final stage has no HEALTHCHECK"
    args = checks[-1]
    _, _, cmd = args.partition("CMD ")
    assert cmd, f"HEALTHCHECK without CMD: {args}"
    return _exec_form(cmd.strip())


def map_to_this_machine(env: dict[str, str]) -> dict[str, str]:
    """The image's virtualenv path becomes this interpreter's environment."""
    image_venv = env.get("VIRTUAL_ENV")
    assert image_venv, "the Dockerfile should set VIRTUAL_ENV (the venv holding ml-worker)"
    here = sys.prefix
    mapped = {k: v.replace(image_venv, here) for k, v in env.items()}
    assert mapped["PATH"].split(os.pathsep)[0] == os.path.join(here, "bin"), (
        "the image's PATH should start with its virtualenv's bin directory"
    )
    return mapped


# ------------------------------------------------------------------------------------------ helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def resolve(command: list[str], env: dict[str, str]) -> list[str]:
    exe = shutil.which(command[0], path=env["PATH"])
    assert exe, (
        f"{command[0]!r} (the image's command) is not on the image PATH mapped here: {env['PATH']}; "
        "install the project into this environment (pip install -e . / pip install .)"
    )
    return [exe, *command[1:]]


def session_gone(pgid: int) -> bool:
    """Whether every process of the server's session (process group) has ended."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def stage() -> list[tuple[str, str]]:
    return final_stage(DOCKERFILE.read_text())


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture
def served(stage: list[tuple[str, str]], tmp_path: Path) -> Iterator[Served]:
    env = map_to_this_machine(image_env(stage))
    env.update({k: os.environ[k] for k in HOST_PASSTHROUGH if k in os.environ})
    port = free_port()
    env["ML_WORKER_PORT"] = str(port)
    command = resolve(image_command(stage), env)
    workdir = tmp_path / "workdir"  # like the image's empty WORKDIR: no repository files around
    workdir.mkdir()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield Served(proc, port, env, log_path)
        finally:
            # The whole session: the server and any pool processes it started.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------ tests


def test_dockerfile_command_and_env_are_readable(stage: list[tuple[str, str]]) -> None:
    assert image_command(stage) == ["ml-worker", "serve"], "README, tests and image share one command"
    env = image_env(stage)
    assert env["ML_WORKER_PORT"].isdigit()
    assert env["ML_WORKER_HOST"] == "0.0.0.0"
    assert env["TMPDIR"] == "/tmp"


def test_serves_health_and_stops_cleanly_on_sigterm(served: Served, stage: list[tuple[str, str]]) -> None:
    proc, port, env = served.proc, served.port, served.env

    def health_while_running() -> tuple[int, dict | None]:  # type: ignore[type-arg]
        if proc.poll() is not None:
            pytest.fail(
                f"the service exited with {proc.returncode} before /health answered:\n{served.output()}"
            )
        return get_health(port)

    try:
        _, body = eventually_sync(
            health_while_running,
            lambda answer: answer[0] == 200,
            timeout=STARTUP_TIMEOUT_S,
            interval=0.25,
            what="/health answering 200",
        )
    except AssertionError as never:
        pytest.fail(f"{never}:\n{served.output()}")
    assert body is not None and body.get("status") == "ok", body

    # The image's HEALTHCHECK command, run with the image's env, agrees.
    check = subprocess.run(resolve(image_healthcheck(stage), env), env=env, timeout=15, capture_output=True)
    assert check.returncode == 0, f"HEALTHCHECK command failed: {check.stderr.decode(errors='replace')}"

    # `docker stop` sends the STOPSIGNAL (SIGTERM) to the command, which runs as PID 1 in the image.
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM:\n{served.output()}")
    assert code == 0, f"exit code {code} after SIGTERM:\n{served.output()}"
    eventually_sync(
        lambda: session_gone(proc.pid),
        timeout=10.0,
        interval=0.1,
        what="the server's pool workers ending with it",
    )

    # ML_WORKER_LOG_FORMAT=json in the image: the log is machine-readable.
    if env.get("ML_WORKER_LOG_FORMAT") == "json":
        lines = [ln for ln in served.output().splitlines() if ln.strip()]
        parsed = 0
        for ln in lines:
            with contextlib.suppress(ValueError):
                parsed += isinstance(json.loads(ln), dict)
        assert parsed > 0, f"no JSON log line with ML_WORKER_LOG_FORMAT=json:\n{served.output()}"
