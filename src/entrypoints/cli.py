"""`ml-worker`: serve the HTTP API, and run the analyses offline on CSV or Parquet files.

The offline commands build the same contract models as the HTTP API from their options (so the
defaults and the validation are the API's), map them with the API's mapping, and call the same
use cases through the same container, with a file reader behind the data and an in-memory job
store. Only the data form differs: a file path, which the HTTP API never accepts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from domain.data import FileRef
from domain.errors import ValidationFailed, WorkerError, field_error
from entrypoints.settings import ENVIRONMENT_HELP, Settings

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from entrypoints.container import Services

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
_POLL_SECONDS = 0.2


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


# ------------------------------------------------------------------------------------------- progress


class Progress:
    """Progress on stderr: a redrawn bar on a terminal; elsewhere (a log, CI) an occasional line,
    so a long run shows it is alive without flooding the log. `fraction=None` means unknown."""

    BAR_WIDTH = 30
    LINE_STEP = 0.25  # a line at every quarter...
    LINE_SECONDS = 10.0  # ...or when this long has passed since the last line

    def __init__(
        self,
        label: str,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._clock = clock
        self._started = clock()
        self._last_line_at = self._started
        self._last_step = 0
        self._drawn = False

    def update(self, fraction: float | None, message: str = "") -> None:
        elapsed = self._clock() - self._started
        if self._tty:
            self._draw(fraction, message, elapsed)
            return
        step = int((fraction or 0.0) / self.LINE_STEP)
        now = self._clock()
        if step > self._last_step or now - self._last_line_at >= self.LINE_SECONDS:
            self._last_step = max(step, self._last_step)
            self._last_line_at = now
            done = f"{fraction:.0%}" if fraction is not None else "running"
            tail = f" {message}" if message else ""
            self._stream.write(f"{self._label}: {done} ({elapsed:.0f} s){tail}\n")
            self._stream.flush()

    def _draw(self, fraction: float | None, message: str, elapsed: float) -> None:
        if fraction is None:
            # Unknown progress: a block sweeping across the bar.
            position = int(elapsed * 8) % self.BAR_WIDTH
            bar = "".join("#" if abs(i - position) < 3 else "-" for i in range(self.BAR_WIDTH))
            done = "    "
        else:
            fraction = min(1.0, max(0.0, fraction))
            filled = round(fraction * self.BAR_WIDTH)
            bar = "#" * filled + "-" * (self.BAR_WIDTH - filled)
            done = f"{fraction:4.0%}"
        line = f"{self._label} [{bar}] {done} {elapsed:5.0f} s {message}"
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self._stream.write("\r" + line[:width].ljust(width))
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            # Leave the terminal clean for the summary.
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._drawn = False


# ------------------------------------------------------------------------------- offline commands


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _json_object(text: str) -> Any:
    # Parsed here rather than by argparse so that a mistake reads like every other error.
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error})") from None


@dataclass(frozen=True)
class Option:
    """One option of an offline command and the field of the API request it sets."""

    flag: str
    field: str
    help: str
    type: Callable[[str], Any] = str
    value: Callable[[Any], Any] | None = None  # turns the parsed text into the request's value
    choices: Sequence[str] | None = None
    required: bool = False
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Output:
    result: Mapping[str, Any]  # the full JSON result, as the API returns it
    out: Mapping[str, Any]  # what --out gets
    summary: str


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    examples: str
    request: str  # the contract model's name
    options: tuple[Option, ...]
    run: Callable[[Services, FileRef, Any, Progress], Awaitable[Output]]


def _build_request(command: Command, args: argparse.Namespace) -> BaseModel:
    from pydantic import ValidationError

    from entrypoints import contract as c

    # Only the options given: everything else keeps the API's default. The data is a placeholder;
    # the file replaces it once the request is valid.
    body: dict[str, Any] = {"data": {"columns": {}}}
    for option in command.options:
        raw = getattr(args, option.dest)
        if raw is None:
            continue
        try:
            body[option.field] = option.value(raw) if option.value is not None else raw
        except ValueError as error:
            message = f"{option.flag}: {error}"
            raise ValidationFailed(message, [field_error(option.flag, str(error))]) from None
    model: type[BaseModel] = getattr(c, command.request)
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise _invalid_options(command, error) from None


def _invalid_options(command: Command, error: ValidationError) -> ValidationFailed:
    flags = {option.field: option.flag for option in command.options}
    details = []
    for item in error.errors(include_url=False, include_input=False):
        location = [str(part) for part in item["loc"]]
        where = flags.get(location[0], location[0]) if location else "options"
        inner = ".".join(location[1:])
        details.append(field_error(f"{where} {inner}".strip(), item["msg"]))
    first = details[0]
    return ValidationFailed(f"{first['field']}: {first['message']}", details)


async def _poll_job(services: Services, use_case: Any, data: FileRef, spec: Any, progress: Progress) -> Any:
    from application.errors import TaskCancelled, error_from_code
    from domain.jobs import RequestEcho

    job = await use_case.submit(data, spec, RequestEcho())
    while not job.status.is_final:
        progress.update(job.progress, job.message)
        await asyncio.sleep(_POLL_SECONDS)
        job = await services.get_job.execute(job.id)
    if job.result is not None and job.error is None:
        return dict(job.result)
    if job.error is not None:
        raise error_from_code(job.error.code, job.error.message)
    raise TaskCancelled(f"the {job.type} job was cancelled")


async def _with_ticker(work: Awaitable[Any], progress: Progress) -> Any:
    """Await `work`, redrawing an unknown-progress bar meanwhile (training reports no fraction)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_POLL_SECONDS)
            if done:
                return task.result()
            progress.update(None, "training")
    finally:
        task.cancel()


def _fmt(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


async def _run_train_gbm(services: Services, data: FileRef, body: Any, progress: Progress) -> Output:
    from application.train_gbm import TrainGbmCommand
    from entrypoints.presenters import commands as mapping

    started = time.perf_counter()
    command = TrainGbmCommand(data=data, spec=mapping.training_spec(body))
    prepared = time.perf_counter()
    outcome = await _with_ticker(services.train_gbm.execute(command), progress)
    total_ms = round((time.perf_counter() - started) * 1000.0, 3)
    response = mapping.training_response(outcome, round((prepared - started) * 1000.0, 3), total_ms)
    m = response["metrics"]
    evaluated = (
        f"{m['validationSamples']} validation rows"
        if m["evaluatedOn"] == "validation"
        else "the training rows (no validation split)"
    )
    top = [f for f in response["featureImportance"] if f["selected"]][:5]
    lines = [
        f"trained {m['numTrees']} trees on {m['trainingSamples']} rows; metrics on {evaluated}",
        f"AUC {_fmt(m['auc'])}  logloss {_fmt(m['logloss'])}  accuracy {_fmt(m['accuracy'], 3)}  "
        f"precision {_fmt(m['precision'], 3)}  recall {_fmt(m['recall'], 3)}  "
        f"positive rate {_fmt(m['positiveRate'], 3)}",
        "top features: " + (", ".join(f"{f['field']} {f['importance']:.3f}" for f in top) or "none"),
        *(f"warning: {w}" for w in response["warnings"]),
    ]
    return Output(result=response, out=response["modelState"], summary="\n".join(lines))


async def _run_segment(services: Services, data: FileRef, body: Any, progress: Progress) -> Output:
    from entrypoints.presenters import commands as mapping

    spec = mapping.segmentation_spec(body)
    result = await _poll_job(services, services.segment_customers, data, spec, progress)
    lines = [
        f"{result['algorithm']}: k={result['k']}, silhouette {_fmt(result.get('silhouette'), 3)}, "
        f"{result['rowCount']} rows, fields: {', '.join(result['fieldsUsed'])}",
    ]
    for segment in result["segments"]:
        lines.append(f"  {segment['size']:>8}  {segment['share']:6.1%}  {segment['name']}")
    lines.extend(f"warning: {w}" for w in result.get("warnings", []))
    return Output(result=result, out=result, summary="\n".join(lines))


async def _run_policies(services: Services, data: FileRef, body: Any, progress: Progress) -> Output:
    from entrypoints.presenters import commands as mapping

    result = await _poll_job(services, services.analyze_policies, data, mapping.policy_spec(body), progress)
    cap = result.get("recommendedWeeklyCap")
    lines = [f"recommended weekly cap: {cap if cap is not None else 'none (not enough evidence)'}"]
    recommendations = result.get("recommendations", [])
    lines.append(f"recommendations ({len(recommendations)}):")
    for item in recommendations:
        confidence = item.get("confidence")
        suffix = f" (confidence {confidence:.2f})" if isinstance(confidence, int | float) else ""
        lines.append(f"  - {item['title']}{suffix}")
    lines.extend(f"warning: {w}" for w in result.get("warnings", []))
    return Output(result=result, out=result, summary="\n".join(lines))


_DIRECTION_MARK = {"helps": "+", "hurts": "-"}


async def _run_content(services: Services, data: FileRef, body: Any, progress: Progress) -> Output:
    from entrypoints.presenters import commands as mapping

    result = await _poll_job(services, services.analyze_content, data, mapping.content_spec(body), progress)
    terms = result.get("topTerms", [])
    lines = [f"top terms for {body.target} ({len(terms)}; + helps, - hurts):"]
    for term in terms[:15]:
        mark = _DIRECTION_MARK.get(term.get("direction", ""), " ")
        lines.append(f"  {mark} {term['term']:<30} {term['importance']:.4f}")
    recommendations = result.get("recommendations", [])
    if recommendations:
        lines.append("recommendations:")
        lines.extend(f"  - {item['title']}" for item in recommendations)
    lines.extend(f"warning: {w}" for w in result.get("warnings", []))
    return Output(result=result, out=result, summary="\n".join(lines))


OFFLINE_ENVIRONMENT_HELP = """\
environment variables (the service's; those that apply offline):
  ML_WORKER_MAX_ROWS               rows read from the file at most (5000000)
  ML_WORKER_CPU_LIMIT              CPUs to use (default: cgroup cpu.max, else the CPU count)
  ML_WORKER_THREADS_PER_TASK       threads of the computation (default: every CPU of the budget)
  ML_WORKER_TRAIN_TIMEOUT_SECONDS  limit of one training (900)
  ML_WORKER_JOB_TIMEOUT_SECONDS    limit of one analysis (3600)

exit status: 0 done, 2 a mistake in the options or the data (`error: CODE: message` on stderr),
130 interrupted.
"""

_FILE_HELP = "a CSV or Parquet file (the format from the extension unless --format is given)"

COMMANDS = (
    Command(
        name="train-gbm",
        help="train a LightGBM model on a file (as POST /train/gbm)",
        description=(
            "Train a binary LightGBM model on a CSV or Parquet file, exactly as POST /train/gbm does.\n"
            "--out gets the modelState (the JSON ensemble the platform scores); --result the whole\n"
            "response (metrics, feature importance, durations)."
        ),
        examples="""\
examples:
  ml-worker train-gbm customers.csv --label converted --out model.json
  ml-worker train-gbm customers.parquet --label churned --features age,income,region \\
      --categorical region --params '{"numIterations": 300, "learningRate": 0.05}' \\
      --validation-fraction 0.25 --early-stopping 20 --out model.json --result training.json
""",
        request="TrainGbmRequest",
        options=(
            Option("--label", "label", "the 0/1 column to predict", required=True, metavar="COLUMN"),
            Option("--features", "features", "feature columns (default: all but the label and id)",
                   value=_names, metavar="A,B"),
            Option("--id-field", "idField", "a column never used as a feature (default: id)",
                   metavar="COLUMN"),
            Option("--categorical", "categoricalFeatures",
                   "columns to treat as categorical (default: every non-numeric feature)",
                   value=_names, metavar="A,B"),
            Option("--encoding", "categoricalEncoding", "categorical encoding (default: onehot)",
                   choices=("onehot", "native")),
            Option("--max-categories", "maxCategories", "most frequent categories kept per field (50)",
                   type=int, metavar="N"),
            Option("--params", "params",
                   'LightGBM parameters as a JSON object with the API\'s names, e.g. \'{"numLeaves": 15}\'',
                   value=_json_object, metavar="JSON"),
            Option("--validation-fraction", "validationFraction",
                   "seeded stratified hold-out for the metrics, 0..0.5 (0.2)", type=float, metavar="F"),
            Option("--early-stopping", "earlyStoppingRounds",
                   "stop when validation logloss has not improved for N rounds", type=int, metavar="N"),
        ),
        run=_run_train_gbm,
    ),
    Command(
        name="segment",
        help="segment customers in a file (as POST /analyze/segments)",
        description="Segment the rows of a CSV or Parquet file, as POST /analyze/segments does.",
        examples="""\
examples:
  ml-worker segment customers.csv --out segments.json
  ml-worker segment customers.parquet --fields income,age,visits --max-clusters 6 --out segments.json
  ml-worker segment customers.csv --algorithm dbscan --out segments.json
""",
        request="SegmentsRequest",
        options=(
            Option("--fields", "fields", "fields to segment on (default: every numeric field)",
                   value=_names, metavar="A,B"),
            Option("--algorithm", "algorithm", "(default: kmeans)", choices=("kmeans", "dbscan")),
            Option("--min-clusters", "minClusters", "smallest k tried (2)", type=int, metavar="K"),
            Option("--max-clusters", "maxClusters", "largest k tried (8)", type=int, metavar="K"),
            Option("--random-state", "randomState", "seed (42)", type=int, metavar="N"),
            Option("--eps", "eps", "DBSCAN radius (default: estimated)", type=float, metavar="R"),
            Option("--min-samples", "minSamples", "DBSCAN core-point size", type=int, metavar="N"),
        ),
        run=_run_segment,
    ),
    Command(
        name="policies",
        help="analyse contact frequency in an interaction log (as POST /analyze/policies)",
        description=(
            "Analyse an interaction log (customer id, channel, timestamp, interaction type) for\n"
            "contact-policy recommendations, as POST /analyze/policies does."
        ),
        examples="""\
examples:
  ml-worker policies interactions.csv --out policies.json
  ml-worker policies events.parquet --lookback-days 60 \\
      --field-map '{"customerId": "user_id", "timestamp": "ts", "interactionType": "event"}' \\
      --caps '{"daily": 2, "weekly": 7, "monthly": 20}' --out policies.json
""",
        request="PoliciesRequest",
        options=(
            Option("--field-map", "fieldMap",
                   "the file's column for each role, as JSON: customerId, channel, timestamp, "
                   "interactionType, offerId", value=_json_object, metavar="JSON"),
            Option("--interaction-values", "interactionValues",
                   'which interaction types count, as JSON, e.g. \'{"conversion": ["purchase"]}\'',
                   value=_json_object, metavar="JSON"),
            Option("--lookback-days", "lookbackDays", "days analysed (90)", type=int, metavar="N"),
            Option("--as-of", "asOf", "end of the lookback window, ISO 8601 with a zone "
                   "(default: the newest timestamp)", metavar="TIME"),
            Option("--caps", "caps", 'caps never exceeded, as JSON (\'{"daily": 3, "weekly": 10, '
                   '"monthly": 30}\')', value=_json_object, metavar="JSON"),
            Option("--bands", "bands", "weekly-frequency band bounds (1,3,5,7,10)", value=_names,
                   metavar="N,N"),
            Option("--min-samples-per-band", "minSamplesPerBand", "(30)", type=int, metavar="N"),
            Option("--random-state", "randomState", "seed (42)", type=int, metavar="N"),
        ),
        run=_run_policies,
    ),
    Command(
        name="content",
        help="find the terms that drive CTR or CVR in creatives (as POST /analyze/content)",
        description=(
            "Analyse creatives (id, channel, text, impressions, clicks, conversions) for the terms\n"
            "that drive the click-through or conversion rate, as POST /analyze/content does."
        ),
        examples="""\
examples:
  ml-worker content creatives.csv --out content.json
  ml-worker content creatives.parquet --text-fields subject,body --target cvr \\
      --field-map '{"id": "creative_id", "revenue": null}' --min-impressions 500 --out content.json
""",
        request="ContentRequest",
        options=(
            Option("--field-map", "fieldMap",
                   "the file's column for each role, as JSON: id, channel, impressions, clicks, "
                   "conversions, revenue", value=_json_object, metavar="JSON"),
            Option("--text-fields", "textFields", "text columns (subject,headline,body,ctaText)",
                   value=_names, metavar="A,B"),
            Option("--target", "target", "(default: ctr)", choices=("ctr", "cvr")),
            Option("--min-impressions", "minImpressions", "creatives with fewer are left out (100)",
                   type=int, metavar="N"),
            Option("--top-terms", "topTerms", "terms reported (20)", type=int, metavar="N"),
            Option("--random-state", "randomState", "seed (42)", type=int, metavar="N"),
        ),
        run=_run_content,
    ),
)


def _output_path(path: str | None, flag: str, data: FileRef) -> Path | None:
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


def _write_json(target: Path, value: Mapping[str, Any]) -> None:
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
    settings = Settings()
    # Jobs live and die with this process, and the data is a file: no job store or database server.
    overrides: dict[str, Any] = {"job_store": "memory", "database_url": None}
    if inline:
        overrides["compute"] = "inline"
    if settings.workers is None:
        overrides["workers"] = 1  # one computation at a time: one worker with every thread
    return settings.model_copy(update=overrides)


def _quiet_cancellation(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Ctrl-C while the resources start cancels dependency-injector's internal callbacks, which
    # would each print a traceback; the interruption itself is reported once, by _offline.
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


async def _execute(
    settings: Settings, command: Command, data: FileRef, body: Any, progress: Progress
) -> Output:
    from entrypoints.container import offline_container, resolve_services

    asyncio.get_running_loop().set_exception_handler(_quiet_cancellation)
    container = offline_container(settings)
    await container.init_resources()  # type: ignore[misc]
    try:
        services = await resolve_services(container)
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


def _offline(command: Command, args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    try:
        data = FileRef(path=args.file, format=args.format)
        if not os.path.exists(data.path):
            # Also the file reader's check; here it answers a typo before the slow start-up
            # (the ML libraries and the worker process) rather than after it.
            message = f"'{data.path}' does not exist"
            raise ValidationFailed(message, [field_error("FILE", message)])
        out = _output_path(args.out, "--out", data)
        result_path = _output_path(getattr(args, "result", None), "--result", data)
        body = _build_request(command, args)
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
    _write_json(out, output.out)
    written = [f"{out}"]
    if result_path is not None:
        _write_json(result_path, output.result)
        written.append(f"{result_path} (full result)")
    print(output.summary)
    print(f"wrote {', '.join(written)}")
    return 0


def _add_offline(commands: Any, command: Command) -> None:
    parser = commands.add_parser(
        command.name,
        help=command.help,
        description=command.description,
        epilog=command.examples + "\n" + OFFLINE_ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help=_FILE_HELP)
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
    parser.set_defaults(handler=lambda args: _offline(command, args))


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
    for command in COMMANDS:
        _add_offline(commands, command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
