"""The check behind .ci/render-pages: a real browser draws both documentation pages from the worker
alone (no internet needed), with every operation of the contract on them, and one report per kind of
result made from examples/, each not blank and with a clean console. Screenshots are left in
$TMPDIR/ml-worker-pages/."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = str(ROOT / ".venv/bin/ml-worker")
SHOTS = Path(tempfile.gettempdir()) / "ml-worker-pages"
METHODS = {"get", "post", "put", "delete", "patch"}
_KEY = {"X-Api-Key": "render-pages-key"}
# A page drawn with its content is well past this; a blank or failed one is far below it.
MIN_SCREENSHOT_BYTES = 20_000
# One result per kind, made by the CLI from the examples (the README's commands).
RESULTS = {
    "training": [
        "train-gbm",
        "customers.csv",
        "--label",
        "converted",
        "--out",
        "model.json",
        "--result",
        "training.json",
    ],
    "segments": ["segment", "segments.csv", "--fields", "income,age", "--out", "segments.json"],
    "policies": ["policies", "interactions.csv", "--out", "policies.json"],
    "content": ["content", "creatives.csv", "--text-fields", "subject", "--out", "content.json"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def chromium(url: str, screenshot: Path) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and the console messages Chromium logged; and a
    screenshot of it."""
    common = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=20000",
        "--window-size=1280,1600",
    ]
    run = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    )
    subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True)
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    return run.stdout, console


def looked_at(name: str, url: str, markers: list[str]) -> list[str]:
    shot = SHOTS / f"{name}.png"
    dom, console = chromium(url, shot)
    failures = [f"{name}: console: {line}" for line in console]
    failures += [f"{name}: {marker!r} is not on the page" for marker in markers if marker not in dom]
    size = shot.stat().st_size
    if size < MIN_SCREENSHOT_BYTES:
        failures.append(f"{name}: the screenshot is {size} bytes: a blank page")
    print(f"{name}: {len(dom):,} bytes of DOM, {len(console)} console messages, screenshot {size:,} bytes")
    return failures


def _post(url: str, body: bytes, content_type: str) -> dict:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type, **_KEY})
    with urllib.request.urlopen(request, timeout=120) as reply:
        return json.loads(reply.read())


def drift_result(base: str, work: Path) -> Path:
    """A drift result made over HTTP (there is no CLI command for it): a model trained on the
    examples' customers, then the rows of one region against it."""
    examples = ROOT / "examples"
    query = urllib.parse.quote(json.dumps({"label": "converted"}))
    trained = _post(
        f"{base}/train/gbm?request={query}",
        (examples / "customers.parquet").read_bytes(),
        "application/vnd.apache.parquet",
    )
    with (examples / "customers.csv").open(encoding="utf-8") as handle:
        rows = [
            {key: (value if key == "region" else float(value)) for key, value in row.items()}
            for row in csv.DictReader(handle)
            if row["region"] == "north"
        ]
    body = json.dumps({"modelState": trained["modelState"], "data": {"rows": rows}, "label": "converted"})
    job = _post(f"{base}/analyze/drift", body.encode(), "application/json")
    deadline = time.monotonic() + 120
    while True:
        request = urllib.request.Request(f"{base}/status/{job['jobId']}", headers=_KEY)
        with urllib.request.urlopen(request, timeout=30) as reply:
            status = json.loads(reply.read())
        if status["status"] not in ("queued", "running") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    path = work / "drift.json"
    path.write_text(json.dumps(status), encoding="utf-8")
    return path


def docs_failures(work: Path) -> list[str]:
    contract = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    operations = [
        (path, op["operationId"])
        for path, item in contract["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]
    port = free_port()
    env = {**os.environ, "ML_WORKER_PORT": str(port), "ML_WORKER_API_KEY": _KEY["X-Api-Key"]}
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - read after the server stopped
    server = subprocess.Popen(
        [CLI, "serve"], env=env, cwd=tempfile.gettempdir(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/health/live")
        failures = looked_at("docs", f"{base}/docs", [f'data-path="{path}"' for path, _ in operations])
        failures += looked_at("redoc", f"{base}/redoc", [f"operation/{op}" for _, op in operations])
        drift_result(base, work)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    if failures:
        log.seek(0)
        print("-- server log\n" + log.read()[-4000:])
    return failures


def report_failures(work: Path) -> list[str]:
    for name in ("customers.csv", "segments.csv", "interactions.csv", "creatives.csv"):
        shutil.copy(ROOT / "examples" / name, work / name)
    failures = []
    for kind, args in RESULTS.items():
        subprocess.run([CLI, *args, "--inline"], cwd=work, check=True, capture_output=True)
        subprocess.run([CLI, "report", f"{kind}.json", "--out", f"{kind}.html"], cwd=work, check=True)
        failures += looked_at(f"report-{kind}", (work / f"{kind}.html").as_uri(), ["<svg"])
    # Made over HTTP by docs_failures: a /status document, as a reader would save it.
    subprocess.run([CLI, "report", "drift.json", "--out", "drift.html"], cwd=work, check=True)
    failures += looked_at("report-drift", (work / "drift.html").as_uri(), ["<svg", "drifted"])
    return failures


def main() -> int:
    SHOTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        failures = docs_failures(Path(work)) + report_failures(Path(work))
    for failure in failures:
        print("FAIL", re.sub(r"\s+", " ", failure)[:300])
    print(f"screenshots in {SHOTS}")
    print("render-pages:", "failed" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
