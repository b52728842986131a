"""`ml-worker report RESULT.json --out report.html`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from entrypoints.cli.offline import EXIT_USER_ERROR

REPORT_HELP = "turn a result JSON into one self-contained HTML page with charts"
REPORT_DESCRIPTION = """\
Turn any result of the worker into one HTML page with charts (no internet needed to view it):
a training (POST /train/gbm's answer, or train-gbm's --result file), or a segmentation, policy,
content or drift result (as GET /status returns it, or as the CLI's --out writes it)."""
REPORT_EXAMPLES = """\
examples:
  ml-worker train-gbm examples/customers.csv --label converted --out model.json --result training.json
  ml-worker report training.json --out training.html
  curl -s localhost:8000/status/$JOB_ID > job.json && ml-worker report job.json --out job.html"""


def add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "report",
        help=REPORT_HELP,
        description=REPORT_DESCRIPTION,
        epilog=REPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("result", metavar="RESULT", help="a result JSON file")
    parser.add_argument("--out", required=True, metavar="PATH", help="write the HTML page here")
    parser.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from entrypoints.report import NotAResult, render_report, result_kind

    source = Path(args.result)
    try:
        document = json.loads(source.read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise NotAResult("the file holds JSON but not an object")
        kind, _ = result_kind(document)
        page = render_report(document)
    except FileNotFoundError:
        return _fail(f"'{source}' does not exist")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return _fail(f"'{source}' is not JSON: {error}")
    except NotAResult as error:
        return _fail(f"'{source}': {error}")
    out = Path(args.out)
    out.write_text(page, encoding="utf-8")
    print(f"wrote {out} ({kind.replace('_', ' ')} report, {len(page.encode()) // 1024} KB)")
    return 0


def _fail(message: str) -> int:
    print(f"error: VALIDATION_ERROR: {message}", file=sys.stderr)
    return EXIT_USER_ERROR
