"""One offline command from start to finish: check the paths and options before any slow start,
start only what a local run needs (the compute runner and the file reader; no job engine), run, and
write the results. A user's mistake ends with one `error: CODE: message` line and exit status 2."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from domain.data import FileRef
from domain.errors import ValidationFailed, WorkerError, field_error
from entrypoints.cli.options import build_request
from entrypoints.cli.progress import Progress
from entrypoints.settings import Settings, settings_from_env

if TYPE_CHECKING:
    from entrypoints.cli.commands import Command
    from entrypoints.cli.runs import Output

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def output_path(path: str | None, flag: str, data: FileRef) -> Path | None:
    """Checked before any work, so a typo in the output path does not cost a whole run."""
    if path is None:
        return None
    target = Path(path)
    message = None
    if target.is_dir():
        message = f"{flag} '{path}' is a directory"
    elif not target.parent.is_dir():
        message = f"{flag} '{path}': the directory '{target.parent}' does not exist"
    elif not os.access(target.parent, os.W_OK):
        message = f"{flag} '{path}': the directory '{target.parent}' is not writable"
    elif target.exists() and os.path.samefile(target, data.path):
        message = f"{flag} '{path}' is the input file"
    if message is not None:
        raise ValidationFailed(message, [field_error(flag, message)])
    return target


def write_json(target: Path, value: Mapping[str, Any]) -> None:
    import orjson

    # orjson writes floats in their shortest round-trip form: the model's thresholds and leaf values
    # keep full float64 precision. A temporary file and a rename: never a half-written result.
    data = orjson.dumps(
        value, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    )
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data + b"\n")
    os.replace(partial, target)


def _offline_settings(inline: bool) -> Settings:
    settings = settings_from_env()
    # The data is a file: no database server, even when the environment names one.
    overrides: dict[str, Any] = {"database_url": None}
    if inline:
        overrides["compute"] = "inline"
    if settings.workers is None:
        overrides["workers"] = 1  # one computation at a time: one worker with every thread
    return settings.model_copy(update=overrides)


def _quiet_cancellation(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Ctrl-C while the resources start cancels dependency-injector's internal callbacks, which
    # would each print a traceback; the interruption itself is reported once, by run_offline.
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


async def _execute(
    settings: Settings, command: Command, data: FileRef, body: Any, progress: Progress
) -> Output:
    from entrypoints.container import offline_container, resolve_offline_services

    asyncio.get_running_loop().set_exception_handler(_quiet_cancellation)
    container = offline_container(settings)
    try:
        services = await resolve_offline_services(container)
        return await command.run(services, data, body, progress)
    finally:
        progress.close()
        await container.shutdown_resources()  # type: ignore[misc]


def _print_error(error: WorkerError) -> None:
    lines = [f"error: {error.code}: {error.message}"]
    for detail in error.details:
        message = str(detail.get("message", ""))
        if message and message not in error.message:  # only what the first line does not say
            lines.append(f"  {detail.get('field', '')}: {message}")
    print("\n".join(lines), file=sys.stderr)


def run_offline(command: Command, args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    try:
        data = FileRef(path=args.file, format=args.format)
        if not os.path.exists(data.path):
            # Also the file reader's check; here it answers a typo before the slow start-up
            # (the ML libraries and the worker process) rather than after it.
            message = f"'{data.path}' does not exist"
            raise ValidationFailed(message, [field_error("FILE", message)])
        out = output_path(args.out, "--out", data)
        result_path = output_path(getattr(args, "result", None), "--result", data)
        body = build_request(command.request, command.all_options, args)
        try:
            settings = _offline_settings(args.inline)
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            where = ".".join(map(str, first["loc"]))
            raise ValidationFailed(f"environment: {where}: {first['msg']}") from None
        progress = Progress(command.name, sys.stderr)
        output = asyncio.run(_execute(settings, command, data, body, progress))
    except WorkerError as error:
        _print_error(error)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    assert out is not None  # --out is required
    write_json(out, output.out)
    written = [f"{out}"]
    if result_path is not None:
        write_json(result_path, output.result)
        written.append(f"{result_path} (full result)")
    print(output.summary)
    print(f"wrote {', '.join(written)}")
    return 0
