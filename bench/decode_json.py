"""Benchmark: a JSON request body (bytes in memory) to the polars frame the computations read, for
the `columns` and the `rows` form, method by method, in MB of body per second.

    PYTHONPATH=src .venv/bin/python bench/decode_json.py                  # 1,000,000 x 20 + label
    PYTHONPATH=src .venv/bin/python bench/decode_json.py --rows 100000 --repeats 5
    PYTHONPATH=src .venv/bin/python bench/decode_json.py --methods ours,before --forms columns

Methods (each run in a fresh subprocess, interleaved round by round, so they share the machine's
state; the table shows medians, wall and CPU seconds):

- `ours`      the service's path: entrypoints/http/json_body.decode_json_request (msgspec; rows
              as one Struct per row), then the inline source's frame (strict polars Series per column)
- `before`    the path it replaced: orjson.loads with the `columns` split and the contract model for
              the rest; the `rows` form through the contract model (pydantic) whole; then the frame
- `orjson`    orjson.loads alone (no frame, no checks): a floor for an orjson path
- `msgspec`   msgspec.json.decode alone (no frame, no checks): a floor for ours

The body is 20 float columns (full float64 precision, as JSON.stringify writes them) and an
integer 0/1 label, encoded once before anything is timed. Every timed region includes freeing
what it built but the frame. Nothing here gates CI; the load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("ours", "before", "orjson", "msgspec")
FORMS = ("columns", "rows")

CHILD = r"""
import gc, json, sys, time
sys.path.insert(0, {src!r})
method, form, path, max_rows = {method!r}, {form!r}, {path!r}, {max_rows}
body = open(path, "rb").read()
# Everything imported before the clock starts, as a running server has it loaded.
import msgspec, orjson
from adapters.inline.dataset_source import frame_from_columns, frame_from_rows
from entrypoints import contract as c
from entrypoints.http.json_body import decode_json_request


def ours():
    parsed = decode_json_request(body, c.TrainGbmRequest)
    data = parsed.data
    if isinstance(data, c.InlineColumns):
        return frame_from_columns(data.columns, max_rows)
    return frame_from_rows(data.rows, max_rows)


def before():
    document = orjson.loads(body)
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, dict) and list(data) == ["columns"]:
        c.TrainGbmRequest.model_validate({{**document, "data": {{"columns": {{}}}}}})
        return frame_from_columns(data["columns"], max_rows)
    del document, data
    parsed = c.TrainGbmRequest.model_validate_json(body)
    return frame_from_rows(parsed.data.rows, max_rows)


def floor(decode):
    def run():
        decode(body)
        return None
    return run


floors = {{"orjson": floor(orjson.loads), "msgspec": floor(msgspec.json.decode)}}
run = {{"ours": ours, "before": before, **floors}}[method]
gc.collect()
wall, cpu = time.perf_counter(), time.process_time()
frame = run()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
shape = None if frame is None else list(frame.shape)
print(json.dumps({{"wall": wall, "cpu": cpu, "shape": shape}}))
"""


def make_body(form: str, rows: int, features: int = 20, seed: int = 7) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    y = (rng.random(rows) < 0.3).astype(int)
    columns = {f"f{i}": x[:, i].tolist() for i in range(features)}
    columns["label"] = y.tolist()
    if form == "columns":
        data: dict[str, object] = {"columns": columns}
    else:
        names = list(columns)
        rows = zip(*columns.values(), strict=True)
        data = {"rows": [dict(zip(names, values, strict=True)) for values in rows]}
    return json.dumps({"data": data, "label": "label", "validationFraction": 0}).encode()


def measure(method: str, form: str, path: str, max_rows: int) -> dict[str, float]:
    code = CHILD.format(src=str(ROOT / "src"), method=method, form=form, path=path, max_rows=max_rows)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{method} {form} failed:\n{result.stderr[-2000:]}")
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--forms", default=",".join(FORMS))
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    forms = [f for f in args.forms.split(",") if f]
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as folder:
        for form in forms:
            path = str(Path(folder) / f"{form}.json")
            body = make_body(form, args.rows)
            Path(path).write_bytes(body)
            mb = len(body) / 1e6
            del body
            print(f"\n{form}: {args.rows} rows x 21 columns, body {mb:.1f} MB (median of {args.repeats})")
            runs: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
            for _ in range(args.repeats):
                for method in methods:
                    runs[method].append(measure(method, form, path, args.rows))
            print(f"{'method':10s} {'wall s':>8s} {'cpu s':>8s} {'MB/s':>8s} {'MB/s cpu':>9s}  all wall")
            for method in methods:
                wall = statistics.median(r["wall"] for r in runs[method])
                cpu = statistics.median(r["cpu"] for r in runs[method])
                walls = " ".join(f"{r['wall']:.2f}" for r in runs[method])
                print(f"{method:10s} {wall:8.2f} {cpu:8.2f} {mb / wall:8.0f} {mb / cpu:9.0f}  {walls}")
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
