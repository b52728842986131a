"""`ml-worker`: serve the HTTP API (and, offline, run the analyses on files)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from entrypoints.settings import ENVIRONMENT_HELP, Settings


def _serve(args: argparse.Namespace) -> int:
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
    settings = Settings()
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ml-worker",
        description="ML Worker: segmentation, contact-policy and content analysis, and LightGBM training.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the HTTP service (uvicorn, one process; computations run in its process pool).",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="listen address (default: ML_WORKER_HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="listen port (default: ML_WORKER_PORT or 8000)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="(default: info)")
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
