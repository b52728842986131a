"""From a DATABASE_URL to asyncpg connections: the URL forms the platform sets, the table source's
pool, and the raw driver connection COPY needs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from adapters.postgres.errors import unavailable
from domain.errors import WorkerError


def asyncpg_engine_target(url: str) -> tuple[URL, dict[str, Any]]:
    """Turn a DATABASE_URL as the platform sets it into SQLAlchemy's asyncpg URL and connect args.

    `postgresql://` and `postgres://` become `postgresql+asyncpg://`. libpq's `sslmode` becomes
    asyncpg's `ssl`, `application_name` a server setting and `pgbouncer=true` (Prisma) disables
    prepared-statement caches; `host`/`port` are kept; other parameters (Prisma's `schema`,
    `connection_limit`...) are dropped because asyncpg would reject them as unknown keywords.
    """
    parsed = make_url(url)
    if parsed.drivername not in ("postgresql", "postgres", "postgresql+asyncpg"):
        raise ValueError(f"the SQL data source needs a postgresql:// URL, not {parsed.drivername}://")
    connect_args: dict[str, Any] = {}
    kept: dict[str, str] = {}
    for key, raw in parsed.query.items():
        value = raw if isinstance(raw, str) else raw[-1]
        if key == "sslmode":
            connect_args["ssl"] = value
        elif key == "application_name":
            connect_args["server_settings"] = {"application_name": value}
        elif key == "pgbouncer":
            if value.lower() in ("1", "true", "yes"):
                # A transaction-mode pooler cannot keep named prepared statements between transactions.
                connect_args["statement_cache_size"] = 0
                kept["prepared_statement_cache_size"] = "0"
        elif key in ("host", "port"):
            kept[key] = value
        # Anything else is dropped: asyncpg would refuse the worker's start over an unknown keyword.
    return parsed.set(drivername="postgresql+asyncpg", query=kept), connect_args


def schema_from_url(url: str) -> str | None:
    """The `schema` parameter Prisma-style URLs carry (`...?schema=app`), for `allowed_schemas`."""
    value = make_url(url).query.get("schema")
    if value is None:
        return None
    return value if isinstance(value, str) else value[-1]


def job_store_url(url: str) -> str:
    """The job store's URL: the same database under SQLAlchemy's asyncpg driver name."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError(f"the PostgreSQL job store needs a postgresql:// URL, not {parsed.drivername}://")
    return parsed.render_as_string(hide_password=False)


def table_engine(url: str, *, connect_timeout_s: float, statement_timeout_ms: int) -> AsyncEngine:
    """The table source's small pool; connections are opened lazily, on the first read."""
    engine_url, connect_args = asyncpg_engine_target(url)
    server_settings = {"application_name": "ml-worker", **connect_args.pop("server_settings", {})}
    return create_async_engine(
        engine_url,
        connect_args={
            "timeout": connect_timeout_s,
            # Client-side guard for a network that goes silent: the server's timeout plus slack.
            "command_timeout": statement_timeout_ms / 1000 + connect_timeout_s,
            "server_settings": server_settings,
            **connect_args,
        },
        # A pooled connection is pinged before use, so a database restart costs one reconnect.
        pool_pre_ping=True,
        pool_size=4,
        max_overflow=4,
        pool_timeout=connect_timeout_s,
    )


@asynccontextmanager
async def driver_connection(engine: AsyncEngine, connect_timeout_s: float) -> AsyncIterator[Any]:
    """The asyncpg connection of a pooled SQLAlchemy connection (COPY needs the driver's API)."""
    sa_conn = engine.connect()
    try:
        # Checkout may ping a dead pooled connection and then reconnect: two connect budgets.
        async with asyncio.timeout(2 * connect_timeout_s):
            await sa_conn.start()
            raw = await sa_conn.get_raw_connection()
    except BaseException:
        await _quietly(sa_conn.close())
        raise
    try:
        yield raw.driver_connection
    except BaseException as exc:
        # A server-side error (bad value, timeout) leaves the connection usable; anything else
        # (lost socket, COPY cut short, cancellation) may leave it mid-protocol: never reuse it.
        if not isinstance(exc, WorkerError | asyncpg.PostgresError) or unavailable(exc):
            await _quietly(sa_conn.invalidate())
        raise
    finally:
        await _quietly(sa_conn.close())


async def _quietly(closing: Any) -> None:
    # Cleanup after a failure must not replace the failure being reported.
    with contextlib.suppress(Exception):
        await closing
