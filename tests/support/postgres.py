"""A throwaway PostgreSQL schema for a test module: created and seeded once, dropped after. A
missing server skips the module, or fails it when CI sets ML_WORKER_REQUIRE_SERVICES=1."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import pytest

DSN = os.environ.get("ML_WORKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def require_postgres() -> None:
    async def reachable() -> bool:
        try:
            conn = await asyncpg.connect(DSN, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    if not asyncio.run(reachable()):
        if os.environ.get("ML_WORKER_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL at {DSN} is unreachable and ML_WORKER_REQUIRE_SERVICES=1")
        pytest.skip(f"PostgreSQL at {DSN} is unreachable")


async def _drop(schema: str) -> None:
    conn = await asyncpg.connect(DSN)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {q(schema)} CASCADE")
    finally:
        await conn.close()


def seeded_schema(prefix: str, seed: Callable[[str], Awaitable[None]]) -> Iterator[str]:
    """For a module-scoped fixture: `yield from seeded_schema("mlw_x", _seed)`."""
    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(seed(name))
        yield name
    finally:
        asyncio.run(_drop(name))
