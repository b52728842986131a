"""Access fails closed: a key that is set but empty, or a table pattern that does not compile,
stops the service before it listens (one line on stderr, exit 2), through `ml-worker serve` and
through the uvicorn app factory alike; keys are compared as bytes, so a non-ASCII key works over
real HTTP; the documentation pages stay open without the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from entrypoints.settings import Settings, settings_from_env
from support.app import app_client
from support.http import error_of
from support.server import free_port, served

ROOT = Path(__file__).resolve().parents[2]
KEY = "clé-✓-ключ-🔑"  # non-ASCII on purpose: Latin-1, other BMP and astral characters

STARTS = {
    "ml-worker serve": ["-m", "entrypoints.cli", "serve", "--host", "127.0.0.1"],
    "app factory": [
        "-m",
        "uvicorn",
        "--factory",
        "entrypoints.http.app:create_app_from_env",
        "--host",
        "127.0.0.1",
    ],
}
REFUSED = [
    ({"ML_WORKER_API_KEY": ""}, "ML_WORKER_API_KEY is set but empty"),
    ({"ML_WORKER_API_KEY": "   "}, "ML_WORKER_API_KEY is set but empty"),
    ({"ML_WORKER_API_KEY": "s3cret\n"}, "ML_WORKER_API_KEY has leading or trailing whitespace"),
    ({"ML_WORKER_TABLE_PATTERN": "^(ds_"}, "ML_WORKER_TABLE_PATTERN is not a valid regular expression"),
    ({"ML_WORKER_TABLE_PATTERN": ""}, "ML_WORKER_TABLE_PATTERN is empty"),
]


def _environment(**variables: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("ML_WORKER_") and k != "DATABASE_URL"}
    return {**keep, "PYTHONPATH": str(ROOT / "src"), **variables}


# Every case through `ml-worker serve`; the factory (the same check) with one case of each setting.
CASES = [("ml-worker serve", *case) for case in REFUSED] + [
    ("app factory", *REFUSED[0]),
    ("app factory", *REFUSED[3]),
]


@pytest.mark.parametrize(("start", "variables", "reason"), CASES, ids=[f"{s}: {r}" for s, _, r in CASES])
def test_a_misconfigured_service_refuses_to_start_in_one_line(
    start: str, variables: dict[str, str], reason: str
) -> None:
    port = free_port()
    done = subprocess.run(
        [sys.executable, *STARTS[start], "--port", str(port)],
        env=_environment(**variables),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: invalid configuration: ") and reason in lines[0], lines[0]
    assert "Traceback" not in done.stderr


def test_settings_refuse_an_empty_key_and_keep_unset_open(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="set but empty"):
        Settings(api_key="")
    monkeypatch.delenv("ML_WORKER_API_KEY", raising=False)
    assert Settings().api_key is None
    monkeypatch.setenv("ML_WORKER_API_KEY", KEY)
    assert Settings().api_key == KEY
    monkeypatch.setenv("ML_WORKER_API_KEY", "")
    with pytest.raises(SystemExit) as stopped:
        settings_from_env()
    assert stopped.value.code == 2


def test_the_access_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ML_WORKER_TABLE_PATTERN", "ML_WORKER_REQUIRE_TENANT_FILTER"):
        monkeypatch.delenv(name, raising=False)
    assert (Settings().table_pattern, Settings().require_tenant_filter) == ("^ds_", True)
    monkeypatch.setenv("ML_WORKER_TABLE_PATTERN", "^(ds|platform)_")
    monkeypatch.setenv("ML_WORKER_REQUIRE_TENANT_FILTER", "false")
    assert (Settings().table_pattern, Settings().require_tenant_filter) == ("^(ds|platform)_", False)


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_a_non_ascii_key_works_over_real_http(http: str) -> None:
    with served(http=http, api_key=KEY) as base_url:
        sent = KEY.encode("utf-8")  # what a client sends for a UTF-8 key: its bytes, unchanged
        with httpx.Client(base_url=base_url, timeout=30) as client:
            allowed = client.get("/status/nope", headers={"X-Api-Key": sent})
            error_of(allowed, 404, "NOT_FOUND")  # past the key check
            for wrong in (
                b"",
                KEY.encode("utf-8")[:-1],
                KEY.encode("utf-8").decode("latin-1").encode("utf-8"),  # the key encoded twice
                KEY.encode("utf-8").upper(),
            ):
                refused = client.get("/status/nope", headers={"X-Api-Key": wrong})
                error_of(refused, 401, "UNAUTHORIZED")
            error_of(client.get("/status/nope"), 401, "UNAUTHORIZED")


async def test_the_documentation_is_open_without_the_key() -> None:
    # The pages show only the contract, and a browser cannot add X-Api-Key when it opens a page.
    async with app_client(api_key="s3cret") as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/openapi.json")).json()["info"]["title"] == "ML Worker"
        error_of(await client.get("/status/abc"), 401, "UNAUTHORIZED")
        error_of(await client.post("/analyze/segments", json={"data": {"rows": []}}), 401, "UNAUTHORIZED")
