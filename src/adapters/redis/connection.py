"""The Redis job store's connections, and what a Redis error means to its callers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

from application.errors import DependencyUnavailable

# Redis replies that mean the server cannot serve us now, rather than a bug in our command.
_UNAVAILABLE_REPLIES = ("OOM", "READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "NOREPLICAS", "BUSY")


def connection_pool(
    url: str, timeout_seconds: float, max_connections: int, client_name: str
) -> aioredis.BlockingConnectionPool[aioredis.Connection]:
    # No I/O here: the client connects on first use, so a store built while Redis is down
    # still constructs, and reports the outage from check() and each call.
    pool: aioredis.BlockingConnectionPool[aioredis.Connection] = aioredis.BlockingConnectionPool.from_url(
        url,
        # Bounded, and callers past the bound wait for a connection rather than fail.
        max_connections=max_connections,
        timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        # No per-read timeout: each call's deadline covers the whole exchange, and a large
        # result may take longer than one read timeout would allow.
        socket_timeout=None,
        retry=Retry(NoBackoff(), 0),
        # Names the connections in CLIENT LIST.
        client_name=client_name,
        # A pooled connection idle past this is pinged before use, so a Redis restart costs
        # a reconnect rather than a failed request.
        health_check_interval=30,
        # With maintenance notifications on ("auto" by default), redis-py skips its check
        # for pooled connections the server closed, and hands them out to fail once.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
    return pool


@asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        raise DependencyUnavailable(f"Redis is unavailable: {exc}") from exc
    except redis_errors.ResponseError as exc:
        if str(exc).startswith(_UNAVAILABLE_REPLIES):
            raise DependencyUnavailable(f"Redis cannot serve the job store: {exc}") from exc
        raise
