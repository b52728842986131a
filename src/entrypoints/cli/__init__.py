"""`ml-worker`: serve the HTTP API, and run the analyses offline on CSV or Parquet files.

The offline commands build the same contract models as the HTTP API from their options (so the
defaults and the validation are the API's), map them with the API's mapping, and call the same use
cases through the same container, with a file reader behind the data. An analysis runs at once in
the compute runner, without the job engine, and its result is presented as /status returns it. Only
the data form differs: a file path, which the HTTP API never accepts.

Modules: `commands` (each command's help and options), `options` (options -> API request), `runs`
(request -> use case -> wire document), `summaries`, `progress`, `offline` (one command's run, its
files and errors), `serve`, `report` (a result as an HTML page, `entrypoints.report`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from entrypoints.cli.commands import COMMANDS, FILE_HELP, OFFLINE_ENVIRONMENT_HELP, Command
from entrypoints.cli.offline import run_offline
from entrypoints.cli.report import add_report
from entrypoints.cli.serve import serve
from entrypoints.settings import ENVIRONMENT_HELP

__all__ = ["build_parser", "main"]


def _add_offline(commands: Any, command: Command) -> None:
    parser = commands.add_parser(
        command.name,
        help=command.help,
        description=command.description,
        epilog=command.examples + "\n" + OFFLINE_ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help=FILE_HELP)
    for option in command.options:
        parser.add_argument(
            option.flag,
            dest=option.dest,
            type=option.type,
            choices=option.choices,
            required=option.required,
            metavar=option.metavar,
            help=option.help,
        )
    parser.add_argument("--format", choices=("csv", "parquet"), help="the file's format (default: extension)")
    training = command.name == "train-gbm"
    out_help = "write the modelState JSON here" if training else "write the JSON result here"
    parser.add_argument("--out", required=True, metavar="PATH", help=out_help)
    if training:
        parser.add_argument("--result", metavar="PATH", help="also write the whole response here")
    parser.add_argument(
        "--inline",
        action="store_true",
        help="compute in this process instead of a worker process (faster to start, for small files)",
    )
    parser.set_defaults(handler=lambda args: run_offline(command, args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ml-worker",
        description="ML Worker: segmentation, contact-policy and content analysis, and LightGBM training.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the HTTP service (uvicorn, one process; computations run in its process pool).",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve_parser.add_argument("--host", help="listen address (default: ML_WORKER_HOST or 0.0.0.0)")
    serve_parser.add_argument("--port", type=int, help="listen port (default: ML_WORKER_PORT or 8000)")
    serve_parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="(default: info)"
    )
    serve_parser.set_defaults(handler=serve)
    for command in COMMANDS:
        _add_offline(commands, command)
    add_report(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
