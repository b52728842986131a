"""Benchmark: how fast a large request body reaches the server, by client and by server stack.

    PYTHONPATH=src .venv/bin/python bench/upload.py                 # 170 MB, 5 repeats
    PYTHONPATH=src .venv/bin/python bench/upload.py --mb 415 --repeats 3

The server runs under uvicorn with `ml-worker serve`'s options, in its own process, with one extra
route that times what every data route does first: `await request.body()`, from the handler's start
to the last byte (the `upload` stage of /train/gbm). Stacks:

- `service`    the service's app (create_app: its middleware, FastAPI) reading the body with
               entrypoints/http/bodies.read_body (chunks copied into one buffer of Content-Length)
- `starlette`  the same app reading it with Starlette's `request.body()` (chunks kept, then joined),
               which the service used before
- `bare`       a bare ASGI receive loop (chunks kept, then joined) on the same uvicorn, for scale; it
               is not a floor: receiving faster, it is handed more and smaller messages

Clients, each sending the same bytes (read into memory before the clock starts):

- `httpx-bytes`   httpx.post(content=body): httpcore writes a bytes body with `send` then
                  `buffer = buffer[sent:]`, a copy of the rest after every partial send, which is
                  quadratic in the body's size once the server reads slower than the client writes
- `httpx-chunks`  httpx.post(content=<1 MB memoryview chunks>, Content-Length set): no such copy
- `curl`          curl --data-binary @file
- `node`          Node's fetch (undici) with a Buffer body, as the platform sends (when node is on PATH)

Prints medians of the server-side read (MB/s of body) with the server's CPU seconds over the read,
and the client's wall time. Nothing here gates CI; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MEDIA = "application/octet-stream"
STACKS = ("service", "starlette", "bare")
CLIENTS = ("httpx-bytes", "httpx-chunks", "curl", "node")
NODE_CLIENT = """
const body = require("fs").readFileSync(process.argv[1]);
fetch(process.argv[2], {method: "POST", body, headers: {"Content-Type": "application/octet-stream"}})
  .then((r) => r.text()).then((t) => process.stdout.write(t));
"""

SERVER = r"""
import json, sys, time
sys.path.insert(0, {src!r})
import uvicorn

stack, port = {stack!r}, {port}


def timings(started, cpu, size):
    return json.dumps({{"read_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu,
                       "bytes": size}}).encode()


async def bare(scope, receive, send):
    if scope["type"] != "http":
        return
    started, cpu = time.perf_counter(), time.process_time()
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    out = timings(started, cpu, len(body))
    headers = [(b"content-type", b"application/json")]
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": out}})


if stack == "bare":
    app = bare
else:
    from starlette.requests import Request
    from starlette.responses import Response
    from entrypoints.http.app import create_app
    from entrypoints.http.bodies import read_body
    from entrypoints.settings import Settings

    app = create_app(Settings(compute="inline", job_store="memory", log_level="warning", max_body_mb=4096))

    async def upload(request: Request):
        started, cpu = time.perf_counter(), time.process_time()
        body = await (read_body(request) if stack == "service" else request.body())
        return Response(timings(started, cpu, len(body)), media_type="application/json")

    app.add_api_route("/bench/upload", upload, methods=["POST"])
uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, proxy_headers=True, log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(stack: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    code = SERVER.format(src=str(ROOT / "src"), stack=stack, port=port)
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the {stack} server did not start")


def chunks(body: bytes, size: int = 1 << 20) -> Iterator[memoryview]:
    view = memoryview(body)
    for start in range(0, len(view), size):
        yield view[start : start + size]


def send(client: str, url: str, body: bytes, path: str) -> tuple[dict[str, float], float]:
    headers = {"Content-Type": MEDIA, "Content-Length": str(len(body))}
    started = time.perf_counter()
    if client == "node":
        out = subprocess.run(["node", "-e", NODE_CLIENT, path, url], capture_output=True, check=True).stdout
        answer = json.loads(out)
    elif client == "curl":
        out = subprocess.run(
            ["curl", "-s", "-X", "POST", "--data-binary", f"@{path}", "-H", f"Content-Type: {MEDIA}", url],
            capture_output=True,
            check=True,
        ).stdout
        answer = json.loads(out)
    else:
        content = body if client == "httpx-bytes" else chunks(body)
        answer = httpx.post(url, content=content, headers=headers, timeout=600).json()
    wall = time.perf_counter() - started
    assert answer["bytes"] == len(body), answer
    return answer, wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=float, default=170.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    body = os.urandom(int(args.mb * 1e6))
    mb = len(body) / 1e6
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; cpus: {os.cpu_count()}")
    print(f"body {mb:.0f} MB; medians of {args.repeats}; server read = handler start to last byte\n")
    columns = ("read s", "MB/s", "srv cpu s", "client s")
    print(f"{'stack':9s} {'client':13s} " + " ".join(f"{c:>9s}" for c in columns) + "  all read s")
    with tempfile.NamedTemporaryFile(suffix=".bin") as file:
        file.write(body)
        file.flush()
        for stack in args.stacks.split(","):
            process, base = start_server(stack)
            url = base if stack == "bare" else f"{base}/bench/upload"
            try:
                send("httpx-chunks", url, body[:1000], file.name)  # warm the route
                clients = [c for c in args.clients.split(",") if c != "node" or shutil.which("node")]
                results: dict[str, list[tuple[dict[str, float], float]]] = {c: [] for c in clients}
                for _ in range(args.repeats):
                    for client in results:
                        results[client].append(send(client, url, body, file.name))
                for client, runs in results.items():
                    read = statistics.median(r["read_s"] for r, _ in runs)
                    cpu = statistics.median(r["cpu_s"] for r, _ in runs)
                    wall = statistics.median(w for _, w in runs)
                    every = " ".join(f"{r['read_s']:.2f}" for r, _ in runs)
                    figures = f"{read:9.3f} {mb / read:9.0f} {cpu:9.3f} {wall:9.3f}"
                    print(f"{stack:9s} {client:13s} {figures}  {every}")
            finally:
                process.terminate()
                process.wait(30)
    print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
