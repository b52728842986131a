"""`ml-worker serve`: the HTTP service under uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import sys

from entrypoints.settings import settings_from_env


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    # Command-line options win over the environment; the app reads its settings from the environment.
    for option, variable in (
        ("host", "ML_WORKER_HOST"),
        ("port", "ML_WORKER_PORT"),
        ("log_level", "ML_WORKER_LOG_LEVEL"),
    ):
        value = getattr(args, option)
        if value is not None:
            os.environ[variable] = str(value)
    settings = settings_from_env()  # refuses to start, in one line, before uvicorn runs
    _raise_open_files_limit()
    # After a graceful shutdown uvicorn restores the default handler and re-raises SIGTERM, which
    # would end the process with -15; a clean stop must exit 0 (container runtimes log it as a crash).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "entrypoints.http.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
        # uvicorn's httptools protocol with header and body deadlines and a connection cap
        # (entrypoints/http/connections.py); named by path, as the CLI does not import the HTTP side.
        http="entrypoints.http.connections:ServeProtocol",
        timeout_graceful_shutdown=30,
    )
    return 0


def _raise_open_files_limit() -> None:
    """Every open connection is a descriptor, and containers often start at a soft limit of 1,024:
    1,100 slow uploads then left none to accept a /health probe with. The hard limit is ours to take."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        # An unlimited hard limit is more than the kernel grants: then the soft limit stays.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
