"""The FastAPI app factory. Building an app does no I/O; the lifespan starts the container's
resources (compute pool, job store, database) and stops them in reverse order."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI

from entrypoints.container import Container, resolve_services
from entrypoints.http.docs import register_docs
from entrypoints.http.errors import install_error_handlers
from entrypoints.http.metrics import Metrics
from entrypoints.http.middleware import RequestContextMiddleware
from entrypoints.http.routes import register_routes
from entrypoints.logging_setup import configure_logging
from entrypoints.settings import Settings, settings_from_env

VERSION = "0.1.0"


@cache
def openapi_document() -> dict[str, Any]:
    """openapi.yaml, the contract, served as is: the repository's copy in a checkout, the packaged
    copy in an installed wheel."""
    checkout = Path(__file__).resolve().parents[3] / "openapi.yaml"
    text = (
        checkout.read_text(encoding="utf-8")
        if checkout.exists()
        else resources.files("entrypoints").joinpath("openapi.yaml").read_text(encoding="utf-8")
    )
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    settings = settings or Settings()
    container = container or Container()
    container.settings.override(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await container.init_resources()  # type: ignore[misc]
        services = await resolve_services(container)
        app.state.services = services
        app.state.metrics.watch_compute(services.runner)
        try:
            yield
        finally:
            await container.shutdown_resources()  # type: ignore[misc]

    app = FastAPI(title="ML Worker", version=VERSION, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.container = container
    # The container's registry: its job observer counts the jobs there.
    app.state.metrics = Metrics(container.metrics_registry())
    app.openapi = openapi_document  # type: ignore[method-assign]
    install_error_handlers(app)
    register_routes(app)
    register_docs(app)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=app.state.metrics,
        max_body_bytes=int(settings.max_body_mb * 1024 * 1024),
    )
    return app


def create_app_from_env() -> FastAPI:
    """The uvicorn factory of `ml-worker serve`."""
    settings = settings_from_env()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    # What the imports and the app built (about 230,000 objects) lives as long as the process; a full
    # collection scanned it all, stalling the event loop for 0.1-0.9 s, which a burst of connections
    # (1,000 slow clients cut off at once) set off again and again. Frozen, it is never scanned.
    gc.collect()
    gc.freeze()
    return app
