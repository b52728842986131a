"""The README's shell blocks run as written: against `ml-worker serve` started as a reader starts it,
and the CLI, in a directory holding `examples/` and `.venv`, with the output each shows.

Every ```bash block is preceded by a marker: `<!-- readme: run -->` (the plain service), `<!-- readme:
run with ML_WORKER_API_KEY=change-me -->`, `<!-- readme: run with DATABASE_URL and ds_customers -->`
(the examples' customers in a table), or `<!-- readme: not run (why) -->`. In a block, `# ` lines
right after a command (or after such a line) are its output, `…` standing for anything; a block's
expected lines must appear in its output in order. The blocks of one server run in one shell, in
README order, as a reader pastes them."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import polars as pl
import pytest
from tests.support.eventually import eventually_sync
from tests.support.postgres import DSN, q, seeded_schema
from tests.support.server import free_port, get_health

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
_MARKER = re.compile(r"<!-- readme: (run(?: with (.+?))?|not run \((.+)\)) -->")
PLAIN, WITH_KEY, WITH_TABLE = "plain", "ML_WORKER_API_KEY=change-me", "DATABASE_URL and ds_customers"


@dataclass(frozen=True)
class Block:
    line: int
    server: str | None  # None: not run
    script: str
    expected: tuple[str, ...]


def readme_blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if line.strip() != "```bash":
            continue
        marker = _MARKER.fullmatch(lines[index - 1].strip()) if index else None
        assert marker, f"README.md:{index + 1}: a bash block without a `<!-- readme: ... -->` marker"
        body = lines[index + 1 : lines.index("```", index + 1)]
        expected, previous = [], "start"
        for text in body:
            if text.startswith("#") and previous in ("command", "output"):
                expected.append(text[2:] if text.startswith("# ") else text[1:])
                previous = "output"
            elif text.strip():
                previous = "comment" if text.startswith("#") else "command"
        server = None if marker.group(3) else (marker.group(2) or PLAIN)
        assert server in (None, PLAIN, WITH_KEY, WITH_TABLE), f"README.md:{index}: unknown marker {server}"
        blocks.append(Block(index + 1, server, "\n".join(body), tuple(expected)))
    return blocks


BLOCKS = readme_blocks()


def test_every_bash_block_is_run_or_says_why_not() -> None:
    assert [b for b in BLOCKS if b.server is not None], "no README block is run"
    assert {b.server for b in BLOCKS} >= {PLAIN, WITH_KEY, WITH_TABLE}


def _matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(pattern, actual.rstrip()) is not None


def _environment(**extra: str) -> dict[str, str]:
    # A reader's shell: none of our variables, the venv found through the working directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_WORKER_") and k != "DATABASE_URL"}
    return {**env, **extra}


@contextlib.contextmanager
def serving(workdir: Path, **settings: str) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/ml-worker"), "serve", "--port", str(port)],
        cwd=workdir,
        env=_environment(**settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        eventually_sync(
            lambda: get_health(port)[0],
            lambda s: s == 200,
            timeout=90,
            interval=0.25,
            what="ml-worker serve answering /health",
        )
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def run_blocks(blocks: list[Block], workdir: Path, port: int) -> None:
    parts = ["set -euo pipefail"]
    for number, block in enumerate(blocks):
        parts += [f"echo '@@block {number}'", block.script.replace("localhost:8000", f"localhost:{port}")]
    done = subprocess.run(
        ["bash", "-c", "\n".join(parts)],
        cwd=workdir,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    outputs = re.split(r"^@@block \d+\n", done.stdout, flags=re.MULTILINE)[1:]
    assert done.returncode == 0 and len(outputs) == len(blocks), (
        f"exit {done.returncode} after {len(outputs)} of {len(blocks)} blocks "
        f"(README.md:{blocks[max(len(outputs) - 1, 0)].line})\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    for block, output in zip(blocks, outputs, strict=True):
        actual = output.splitlines()
        position = 0
        for expected in block.expected:
            while position < len(actual) and not _matches(expected, actual[position]):
                position += 1
            assert position < len(actual), (
                f"README.md:{block.line}: expected {expected!r} (in order) in:\n{output}"
            )
            position += 1


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing:
        message = f"the README's examples need {', '.join(missing)} (apt-get install {' '.join(missing)})"
        if os.environ.get("ML_WORKER_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("readme")
    (work / "examples").symlink_to(ROOT / "examples")
    (work / ".venv").symlink_to(ROOT / ".venv")
    return work


def test_the_blocks_for_the_plain_service_run_as_written(workdir: Path) -> None:
    with serving(workdir) as port:
        run_blocks([b for b in BLOCKS if b.server == PLAIN], workdir, port)


def test_the_api_key_blocks_run_as_written(workdir: Path) -> None:
    with serving(workdir, ML_WORKER_API_KEY="change-me") as port:
        run_blocks([b for b in BLOCKS if b.server == WITH_KEY], workdir, port)


async def _seed_customers(schema: str) -> None:
    frame = pl.read_csv(ROOT / "examples" / "customers.csv")
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f"CREATE SCHEMA {q(schema)}")
        await conn.execute(
            f"CREATE TABLE {q(schema)}.ds_customers (id bigint, x1 double precision, x2 double precision, "
            "noise double precision, region text, converted integer)"
        )
        await conn.copy_records_to_table("ds_customers", schema_name=schema, records=frame.rows())
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def customers_schema() -> Iterator[str]:
    yield from seeded_schema("mlw_readme", _seed_customers)


def test_the_table_blocks_run_as_written(workdir: Path, customers_schema: str) -> None:
    with serving(workdir, DATABASE_URL=DSN, ML_WORKER_DATABASE_SCHEMAS=customers_schema) as port:
        run_blocks([b for b in BLOCKS if b.server == WITH_TABLE], workdir, port)
