"""What the deadlines cost: uvicorn's own httptools protocol beside the service's guarded one
(entrypoints/http/connections.py), serving the real app, in alternating rounds.

    PYTHONPATH=src .venv/bin/python bench/http_protocol.py [--upload-mb 415] [--requests 2000] [--rounds 3]

Per round and protocol: one upload of `--upload-mb` to /train/gbm at full speed over loopback (not
JSON, so the app reads it all and answers 400 at once: the time is the transfer's), then
`--requests` GET /health on one kept-alive connection. Prints medians, the guarded/stock ratio and
the server's CPU seconds. With `--upload-mbit`, the upload is paced like a slow link instead: it
must pass under the default deadlines.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = {
    "stock": "httptools",
    "guarded": "entrypoints.http.connections:ServeProtocol",
}
SERVER = """
import sys, uvicorn
uvicorn.run("entrypoints.http.app:create_app_from_env", factory=True, host="127.0.0.1",
            port=int(sys.argv[1]), log_config=None, http=sys.argv[2])
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(protocol: str, upload_mb: int) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "ML_WORKER_LOG_LEVEL": "warning",
        "ML_WORKER_MAX_BODY_MB": str(upload_mb + 1),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), PROTOCOLS[protocol]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("server did not start")


def upload(port: int, megabytes: int, mbit: float | None) -> tuple[int | str, float]:
    block = b"x" * (1024 * 1024)
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=900) as sock:
        sock.sendall(
            b"POST /train/gbm HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % (megabytes * len(block))
        )
        piece = block[: 64 * 1024]
        for sent in range(megabytes * 16):
            sock.sendall(piece)
            if mbit:  # the pace of a link of `mbit` megabits per second
                due = started + (sent + 1) * len(piece) * 8 / (mbit * 1e6)
                time.sleep(max(0.0, due - time.perf_counter()))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status: int | str = int(answer.split(b" ", 2)[1]) if answer else "closed"
    return status, time.perf_counter() - started


def health_rate(port: int, requests: int) -> float:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        started = time.perf_counter()
        for _ in range(requests):
            client.get("/health").raise_for_status()
        return requests / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upload-mb", type=int, default=415)
    parser.add_argument("--upload-mbit", type=float, help="pace the upload at this many Mbit/s")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--protocols", default="stock,guarded")
    args = parser.parse_args()
    seen: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for name in args.protocols.split(","):
            process, port = start(name, args.upload_mb)
            try:
                cpu = cpu_seconds(process.pid)
                status, seconds = upload(port, args.upload_mb, args.upload_mbit)
                upload_cpu = cpu_seconds(process.pid) - cpu
                if status != 400:
                    print(f"{name}: upload answered {status} after {seconds:.1f} s (expected 400)")
                cpu = cpu_seconds(process.pid)
                rate = health_rate(port, args.requests)
                health_cpu = cpu_seconds(process.pid) - cpu
            finally:
                process.terminate()
                process.wait(30)
            row = seen.setdefault(name, {"upload": [], "upload_cpu": [], "rate": [], "health_cpu": []})
            row["upload"].append(seconds)
            row["upload_cpu"].append(upload_cpu)
            row["rate"].append(rate)
            row["health_cpu"].append(health_cpu)
    pace = f" paced at {args.upload_mbit:g} Mbit/s" if args.upload_mbit else ""
    print(
        f"{args.rounds} rounds; upload of {args.upload_mb} MB{pace}; {args.requests} GET /health kept alive"
    )
    medians = {
        name: {key: statistics.median(values) for key, values in row.items()} for name, row in seen.items()
    }
    for name, m in medians.items():
        print(
            f"{name:8s} upload {m['upload']:6.2f} s ({args.upload_mb / m['upload']:5.1f} MB/s, server CPU "
            f"{m['upload_cpu']:5.2f} s)   /health {m['rate']:6.0f} req/s (server CPU {m['health_cpu']:.2f} s)"
        )
    if {"stock", "guarded"} <= set(medians):
        g, s = medians["guarded"], medians["stock"]
        print(
            f"guarded / stock: upload time {g['upload'] / s['upload']:.2f}, "
            f"/health rate {g['rate'] / s['rate']:.2f}"
        )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
