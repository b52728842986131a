"""The one way the tests build the app: test settings, the real app factory, and a client over it.

A test that needs a fake adapter passes a container with that provider overridden
(`container.job_store.override(...)`), so the app under test is wired exactly as in production
but for the part the test replaces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from entrypoints.container import Container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings

# Hermetic by default: nothing read from the environment decides where jobs or data live.
TEST_SETTINGS: dict[str, Any] = {
    "compute": "inline",
    "job_store": "memory",
    "api_key": None,
    "database_url": None,
    "log_format": "json",
    "log_level": "warning",
}


def make_settings(**overrides: Any) -> Settings:
    return Settings(**{**TEST_SETTINGS, **overrides})


def make_app(
    container: Container | None = None, *, settings: Settings | None = None, **overrides: Any
) -> FastAPI:
    """The production app factory over test settings (inline compute unless `compute="process"`)."""
    return create_app(settings or make_settings(**overrides), container)


@asynccontextmanager
async def started(app: FastAPI, timeout: float = 60) -> AsyncIterator[httpx.AsyncClient]:
    """Runs the app's lifespan (container resources up, then down) around an in-process client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=timeout) as client:
            yield client


@asynccontextmanager
async def app_client(
    container: Container | None = None, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    async with started(make_app(container, **overrides)) as client:
        yield client
