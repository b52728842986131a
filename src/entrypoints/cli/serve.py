"""`ml-worker serve`: the HTTP service under uvicorn."""

from __future__ import annotations

import argparse
import os
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
        timeout_graceful_shutdown=30,
    )
    return 0
