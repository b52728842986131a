"""GET /health latency while a segmentation job runs, beside the same measure on an idle server.

    .venv/bin/python bench/health_under_load.py [--rows 300000]

Target (issue 3): p99 <= 50 ms while a job runs. The job computes in the worker's process pool, so
the event loop that answers /health only relays progress.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "ML_WORKER_PORT": str(port),
        "ML_WORKER_HOST": "127.0.0.1",
        "ML_WORKER_LOG_LEVEL": "warning",
        "ML_WORKER_MAX_BODY_MB": "2048",
    }
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/ml-worker"), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "w"),  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("server did not start")


def probe(client: httpx.Client, url: str, seconds: float | None, until=None) -> list[float]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    end = time.monotonic() + seconds if seconds else None
    while (end is None or time.monotonic() < end) and (until is None or not until()):
        t = time.perf_counter()
        client.get(f"{url}/health").raise_for_status()
        latencies.append((time.perf_counter() - t) * 1000)
        time.sleep(0.02)
    return latencies


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    median = statistics.median(ordered)
    return f"n={len(ordered):5d}  p50 {median:6.1f} ms  p99 {p99:6.1f} ms  max {ordered[-1]:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=5, size=(5, 8))
    x = centres[rng.integers(0, 5, args.rows)] + rng.normal(size=(args.rows, 8))
    body = json.dumps(
        {
            "data": {"columns": {f"f{i}": x[:, i].tolist() for i in range(8)}},
            "minClusters": 2,
            "maxClusters": 8,
        }
    ).encode()
    process, url = start_server()
    try:
        with httpx.Client(timeout=30) as client:
            idle = probe(client, url, seconds=10)
            # The submission (body parsing and validation) and the job both count: /health is probed
            # from the moment the upload starts until the job is finished.
            submitted: dict[str, Any] = {}

            def submit() -> None:
                with httpx.Client(timeout=600) as uploader:
                    submitted["answer"] = uploader.post(
                        f"{url}/analyze/segments",
                        content=(memoryview(body)[i : i + (1 << 20)] for i in range(0, len(body), 1 << 20)),
                        headers={"content-type": "application/json", "content-length": str(len(body))},
                    )

            uploader = threading.Thread(target=submit)
            state = {"status": "queued"}
            polls = 0

            def finished() -> bool:
                nonlocal polls
                if "answer" not in submitted:
                    return False
                polls += 1
                if polls % 10 == 1:
                    submitted["answer"].raise_for_status()
                    state.update(client.get(f"{url}/status/{submitted['answer'].json()['jobId']}").json())
                return state["status"] in ("completed", "failed", "cancelled")

            started = time.monotonic()
            uploader.start()
            during_upload: list[float] = []
            while "answer" not in submitted:
                during_upload.extend(probe(client, url, seconds=0.001))
            during_job = probe(client, url, seconds=None, until=finished)
            elapsed = time.monotonic() - started
            uploader.join()
        print(
            f"segmentation of {args.rows:,} rows x 8, k 2..8: "
            f"upload + job {state['status']} in ~{elapsed:.1f} s"
        )
        if state.get("error"):
            print(f"job error: {state['error']}")
        print(f"GET /health idle:          {summary(idle)}")
        print(f"GET /health during upload: {summary(during_upload)}")
        print(f"GET /health during job:    {summary(during_job)}")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        process.terminate()
        process.wait(30)


if __name__ == "__main__":
    main()
