"""GET /health while slow clients hold connections open against a real `ml-worker serve`.

    PYTHONPATH=src .venv/bin/python bench/slow_connections.py [--slow-headers 500] [--slow-bodies 500]
        [--seconds 40] [--interval 1] [--upload-mb 415] [--server-env NAME=VALUE ...]

Slow-header clients send a request line and then one header byte per `--interval`; slow-body clients
send complete headers of a 415 MB `/train/gbm` upload and then one body byte per `--interval`. A
client the server cuts off reconnects at once (an attacker keeps the pressure on), so the number of
open slow connections stays near the total. Meanwhile /health is probed on a fresh connection, as a
kubelet does, with the chart's readiness timeout (3 s): its p50/p99 and failures are printed beside
the same probe on the idle server, with the server's CPU seconds and the load average. With
`--upload-mb`, a legitimate upload of that size is timed idle and during the attack (it must pass).
The attackers run in their own process, so their work does not delay the probe's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BODY_BYTES = 415 * 1024 * 1024


def raise_open_files_limit() -> int:
    """Each slow connection is a descriptor on both sides; the soft limit (often 1,024) would end the
    experiment long before the server does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_server(
    extra_env: dict[str, str], open_files: int | None, source: Path
) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "ML_WORKER_PORT": str(port),
        "ML_WORKER_HOST": "127.0.0.1",
        "ML_WORKER_LOG_LEVEL": "warning",
        **extra_env,
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from entrypoints.cli import main; sys.exit(main())", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "w"),  # noqa: SIM115
        # A container's default (1,024 soft) instead of this script's raised limit, when asked.
        preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard)))
        if open_files
        else None,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if probe_once(port, 2.0)[0] == 200:
            return process, port
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------ the probe


def probe_once(port: int, timeout: float) -> tuple[int | str, float]:
    """(status or failure reason, seconds) of one GET /health on a new connection."""
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(max(0.01, timeout - (time.perf_counter() - started)))
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    except TimeoutError:
        return "timeout", time.perf_counter() - started
    except OSError as exc:
        return type(exc).__name__, time.perf_counter() - started
    elapsed = time.perf_counter() - started
    try:
        return int(answer.split(b" ", 2)[1]), elapsed
    except (IndexError, ValueError):
        return "no status line", elapsed


def probe_for(port: int, seconds: float, every: float, timeout: float) -> tuple[list[float], Counter[str]]:
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    started = time.monotonic()
    end = started + seconds
    while time.monotonic() < end:
        at = time.monotonic() - started
        status, elapsed = probe_once(port, timeout)
        if status == 200:
            latencies.append(elapsed * 1000)
        else:
            failures[str(status)] += 1
        if os.environ.get("BENCH_SLOW_PROBES") and (status != 200 or elapsed > 0.1):
            print(f"  probe at {at:5.1f} s: {status} in {elapsed * 1000:.0f} ms")
        time.sleep(max(0.0, every - elapsed))
    return latencies, failures


def summary(latencies: list[float], failures: Counter[str]) -> str:
    if not latencies:
        return f"n=0  failures {sum(failures.values())} {dict(failures)}"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    text = (
        f"n={len(ordered):4d}  p50 {statistics.median(ordered):7.1f} ms  p99 {p99:7.1f} ms  "
        f"max {ordered[-1]:7.1f} ms  failures {sum(failures.values())}"
    )
    return text + (f" {dict(failures)}" if failures else "")


# -------------------------------------------------------------------------------- a legitimate upload


def upload(port: int, megabytes: int) -> tuple[int | str, float]:
    """(status, seconds) of one POST of `megabytes` to /train/gbm. The body is not JSON, so the
    server reads all of it and answers 400 at once: the time is the transfer's."""
    block = b"x" * (1024 * 1024)
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=600) as sock:
            sock.sendall(
                b"POST /train/gbm HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n" % (megabytes * len(block))
            )
            for _ in range(megabytes):
                sock.sendall(block)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    except OSError as exc:
        return type(exc).__name__, time.perf_counter() - started
    return int(answer.split(b" ", 2)[1]) if answer else "closed", time.perf_counter() - started


# ------------------------------------------------------------------------------------------ attackers


async def slow_client(
    kind: str, port: int, interval: float, stats: dict[str, Any], stop: asyncio.Event
) -> None:
    if kind == "header":
        prefix, trickle = b"POST /train/gbm HTTP/1.1\r\nHost: bench\r\nX-Slow: ", b"a"
    else:
        prefix = (
            b"POST /train/gbm HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n{" % BODY_BYTES
        )
        trickle = b" "
    while not stop.is_set():
        opened = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            stats["connect_errors"][type(exc).__name__] += 1
            await asyncio.sleep(interval)
            continue
        stats["open"] += 1
        stats["peak"] = max(stats["peak"], stats["open"])
        stats["opened"][kind] += 1
        try:
            writer.write(prefix)
            while not stop.is_set():
                try:
                    answer = await asyncio.wait_for(reader.read(256), interval)
                except TimeoutError:
                    writer.write(trickle)
                    await writer.drain()
                    continue
                # An answer or the end of the stream: the server cut this client off.
                status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"
                stats["cut"][f"{kind} {status}"] += 1
                stats["cut_after"][kind].append(time.monotonic() - opened)
                break
        except OSError as exc:
            stats["cut"][f"{kind} {type(exc).__name__}"] += 1
            stats["cut_after"][kind].append(time.monotonic() - opened)
        finally:
            stats["open"] -= 1
            writer.close()


def attack(
    port: int, headers: int, bodies: int, interval: float, seconds: float, ramp_seconds: float, report: Any
) -> None:
    raise_open_files_limit()

    async def main() -> dict[str, Any]:
        stats: dict[str, Any] = {
            "open": 0,
            "peak": 0,
            "opened": Counter(),
            "cut": Counter(),
            "cut_after": {"header": [], "body": []},
            "connect_errors": Counter(),
        }
        stop = asyncio.Event()
        clients = []
        total = headers + bodies
        # The two kinds interleaved and opened evenly over the ramp (at least a few hundred ms, not
        # one burst of SYNs); with no ramp, every client's deadline falls at the same instant.
        kinds = sorted(
            [(k / headers, "header") for k in range(headers)] + [(k / bodies, "body") for k in range(bodies)]
        )
        for i, (_, kind) in enumerate(kinds):
            clients.append(asyncio.create_task(slow_client(kind, port, interval, stats, stop)))
            if i % 50 == 49:
                await asyncio.sleep(max(0.01, ramp_seconds * 50 / total))
        ramp = time.monotonic() + 15
        while stats["open"] < headers + bodies and time.monotonic() < ramp:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        report.put(("ready", stats["open"]))
        await asyncio.sleep(seconds)
        stats["open_at_end"] = stats["open"]
        stop.set()
        await asyncio.gather(*clients, return_exceptions=True)
        return stats

    report.put(("done", asyncio.run(main())))


def describe_cuts(stats: dict[str, Any]) -> list[str]:
    lines = []
    for kind in ("header", "body"):
        after = stats["cut_after"][kind]
        if not stats["opened"][kind]:
            continue
        cuts = {k.split(" ", 1)[1]: v for k, v in stats["cut"].items() if k.startswith(kind)}
        timing = f", after median {statistics.median(after):.1f} s (max {max(after):.1f} s)" if after else ""
        lines.append(
            f"slow-{kind} clients: {stats['opened'][kind]} connections opened, "
            f"{len(after)} cut off {cuts}{timing}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slow-headers", type=int, default=500)
    parser.add_argument("--slow-bodies", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=40.0, help="attack duration once all are open")
    parser.add_argument("--ramp-seconds", type=float, default=10.0, help="spread the opening over this")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between trickled bytes")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--probe-every", type=float, default=0.25)
    parser.add_argument("--probe-timeout", type=float, default=3.0, help="the chart's readiness timeout")
    parser.add_argument("--upload-mb", type=int, default=0, help="also time a legitimate upload of this size")
    parser.add_argument("--server-open-files", type=int, help="the server's soft limit (default: this one's)")
    parser.add_argument(
        "--server-src", type=Path, default=ROOT / "src", help="another checkout's src, to compare"
    )
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    limit = raise_open_files_limit()
    extra_env = dict(item.split("=", 1) for item in args.server_env)
    if args.upload_mb:
        extra_env.setdefault("ML_WORKER_MAX_BODY_MB", str(args.upload_mb + 1))
    server, port = start_server(extra_env, args.server_open_files, args.server_src)
    try:
        uploads: dict[str, tuple[int | str, float]] = {}
        if args.upload_mb:
            uploads["idle"] = upload(port, args.upload_mb)
        cpu = cpu_seconds(server.pid)
        idle = probe_for(port, args.idle_seconds, args.probe_every, args.probe_timeout)
        idle_cpu = cpu_seconds(server.pid) - cpu
        report: Any = mp.get_context("spawn").Queue()
        attacker = mp.get_context("spawn").Process(
            target=attack,
            args=(
                port,
                args.slow_headers,
                args.slow_bodies,
                args.interval,
                args.seconds,
                args.ramp_seconds,
                report,
            ),
        )
        attacker.start()
        _, ready = report.get(timeout=120)
        cpu = cpu_seconds(server.pid)
        during_upload: list[Any] = []
        if args.upload_mb:
            uploader = threading.Thread(target=lambda: during_upload.append(upload(port, args.upload_mb)))
            uploader.start()
        attacked = probe_for(port, args.seconds - 1, args.probe_every, args.probe_timeout)
        attack_cpu = cpu_seconds(server.pid) - cpu
        _, stats = report.get(timeout=120)
        attacker.join(30)
        if args.upload_mb:
            uploader.join()
            uploads["during the attack"] = during_upload[0]
    finally:
        server.terminate()
        server.wait(30)
    print(
        f"{args.slow_headers} slow-header + {args.slow_bodies} slow-body clients, one byte per "
        f"{args.interval:g} s, opened over {args.ramp_seconds:g} s, then {args.seconds:g} s; "
        f"server env {extra_env or '{}'}; open-files limit {limit}"
        + (f", server started with {args.server_open_files}" if args.server_open_files else "")
        + (f"; server from {args.server_src}" if args.server_src != ROOT / "src" else "")
    )
    print(
        f"open slow connections: {ready} once ramped, peak {stats['peak']}, {stats['open_at_end']} at the end"
    )
    for line in describe_cuts(stats):
        print(line)
    if stats["connect_errors"]:
        print(f"attacker connect errors: {dict(stats['connect_errors'])}")
    print(f"GET /health idle:             {summary(*idle)}   server CPU {idle_cpu:.2f} s")
    print(f"GET /health during the slow:  {summary(*attacked)}   server CPU {attack_cpu:.2f} s")
    for phase, (status, seconds) in uploads.items():
        print(
            f"upload of {args.upload_mb} MB {phase}: status {status} in {seconds:.2f} s "
            f"({args.upload_mb / seconds:.0f} MB/s)"
        )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
