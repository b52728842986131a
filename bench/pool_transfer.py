"""How a task's frame reaches the compute process: this tree's code against another commit's, side by
side in one run (e.g. before and after frames went through shared memory instead of the pipe).

    .venv/bin/python bench/pool_transfer.py --before-ref 50cbad3            # both parts below
    .venv/bin/python bench/pool_transfer.py --before-ref 50cbad3 --part pool --repeats 7

`pool`: a ProcessPoolRunner (1 worker) in a fresh process per side runs a task on a 1,000,000 x 20
float frame: `height` (reads no value: the transfer alone) and `sum` (reads every value once, so a
mapped frame's page faults are counted). Wall and CPU seconds (server + worker), the worker's peak
RSS (VmHWM) and its peak private memory (RssAnon).

`http`: `POST /train/gbm` with the same frame as a JSON `columns` body (encoded once), to
`ml-worker serve` from each side, requests alternating between them. "load+ipc" is the server's
total minus its parse and worker stages. The worker's peak RSS and peak private memory (sampled),
the server tree's peak PSS (shared pages counted once).

Medians; the load average is printed. Nothing here gates CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
ROWS, FEATURES = 1_000_000, 20


# ---------------------------------------------------------------------- tasks (run in the worker)


def height(dataset: Any, *, progress: Any) -> int:
    return int(dataset.frame.height)


def total(dataset: Any, *, progress: Any) -> float:
    return float(dataset.frame.sum().sum_horizontal()[0])


def frame() -> Any:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(7)
    return pl.DataFrame({f"x{i}": rng.normal(size=ROWS) for i in range(FEATURES)})


# ---------------------------------------------------------------------- memory of a process


def memory_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("VmHWM", "VmRSS", "RssAnon", "RssShmem", "RssFile")):
                    name, value = line.split(":", 1)
                    out[name] = int(value.split()[0])
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1])
    except OSError:
        pass
    return out


def reset_peak(pid: int) -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux; needs the process's owner).
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pids: list[int]) -> float:
    total_ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total_ticks += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total_ticks / os.sysconf("SC_CLK_TCK")


def process_tree(root: int) -> list[int]:
    return [pid for pid, _ in process_depths(root)]


def process_depths(root: int) -> list[tuple[int, int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, pending = [], [(root, 0)]
    while pending:
        pid, depth = pending.pop()
        tree.append((pid, depth))
        pending.extend((child, depth + 1) for child in children.get(pid, []))
    return tree


class Sampler:
    """Peaks of RssAnon per process and of the tree's summed PSS, every 50 ms."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.anon: dict[int, int] = {}
        self.pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            pss = 0
            for pid in process_tree(self.root):
                mem = memory_kb(pid)
                self.anon[pid] = max(self.anon.get(pid, 0), mem.get("RssAnon", 0))
                pss += mem.get("Pss", 0)
            self.pss = max(self.pss, pss)
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------- part 1: the pool alone

POOL_CHILD = """
import asyncio, json, os, sys, time
sys.path.insert(0, {bench!r})
import pool_transfer as b
from adapters.compute.process_pool import ProcessPoolRunner
from adapters.frames import PolarsDataset

async def main():
    preload = ("polars", "pyarrow.ipc")
    runner = ProcessPoolRunner(workers=1, threads_per_task=2, queue_limit=0, preload=preload)
    await runner.start()
    data = PolarsDataset(b.frame())
    [worker] = runner.worker_pids()
    await runner.run(b.height, PolarsDataset(data.frame.head(10)))  # warm: imports in the worker
    out = []
    for task in [b.height, b.total] * {repeats}:
        b.reset_peak(worker)
        before = b.memory_kb(worker)
        cpu = b.cpu_seconds([os.getpid(), worker])
        t = time.perf_counter()
        await runner.run(task, data)
        wall = time.perf_counter() - t
        after = b.memory_kb(worker)
        out.append(dict(
            task=task.__name__, wall=wall, cpu=b.cpu_seconds([os.getpid(), worker]) - cpu,
            hwm_mb=after["VmHWM"] / 1024, anon_growth_mb=(after["RssAnon"] - before["RssAnon"]) / 1024,
        ))
        [worker] = runner.worker_pids()
    await runner.close()
    print(json.dumps(out))

if __name__ == "__main__":
    asyncio.run(main())
"""


def pool_side(src: Path, repeats: int) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = POOL_CHILD.format(bench=str(BENCH), repeats=repeats)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def pool_part(sides: dict[str, Path], repeats: int) -> None:
    print(f"\npool: {ROWS:,} x {FEATURES} float64, 1 worker x 2 threads, median of {repeats} per task")
    print(
        f"{'side':<8}{'task':<8}{'wall s':>8}{'cpu s':>8}{'worker peak RSS MB':>20}{'RssAnon growth MB':>19}"
    )
    results = {side: [] for side in sides}
    for _ in range(repeats):  # alternate the sides, one fresh process each time
        for side, src in sides.items():
            results[side].extend(pool_side(src, 1))
    for side in sides:
        for task in ("height", "total"):
            rows = [r for r in results[side] if r["task"] == task]
            med = {
                k: statistics.median(r[k] for r in rows) for k in ("wall", "cpu", "hwm_mb", "anon_growth_mb")
            }
            print(
                f"{side:<8}{task:<8}{med['wall']:>8.3f}{med['cpu']:>8.2f}{med['hwm_mb']:>20.0f}"
                f"{med['anon_growth_mb']:>19.0f}"
            )


# ---------------------------------------------------------------------- part 2: POST /train/gbm

PARAMS = {"numIterations": 100, "learningRate": 0.1, "numLeaves": 31, "minDataInLeaf": 20, "seed": 42}
WORKER_STAGES = ("prepare", "train", "evaluate", "dump", "parityFixture")


class Server:
    def __init__(self, src: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = {
            **os.environ,
            "PYTHONPATH": str(src),
            "ML_WORKER_PORT": str(self.port),
            "ML_WORKER_HOST": "127.0.0.1",
            "ML_WORKER_LOG_LEVEL": "warning",
            "ML_WORKER_MAX_BODY_MB": "2048",
        }
        self.process = subprocess.Popen(
            [str(ROOT / ".venv/bin/ml-worker"), "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, httpx: Any) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    time.sleep(3)  # the workers finish importing their modules
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def workers(self) -> list[int]:
        # server -> forkserver -> compute processes (the resource tracker is a child of the server)
        return [p for p, depth in process_depths(self.process.pid) if depth == 2 and "forkserver" in _name(p)]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def _name(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            + Path(f"/proc/{pid}/comm").read_text()
        )
    except OSError:
        return ""


def body() -> bytes:
    x = frame()
    columns = {name: x[name].to_list() for name in x.columns}
    import numpy as np

    logit = 1.5 * x["x0"].to_numpy() - x["x1"].to_numpy()
    columns["label"] = (np.random.default_rng(8).random(ROWS) < 1 / (1 + np.exp(-logit))).astype(int).tolist()
    request = {"data": {"columns": columns}, "label": "label", "params": PARAMS, "validationFraction": 0}
    return json.dumps(request).encode()


def http_part(sides: dict[str, Path], repeats: int) -> None:
    import httpx

    payload = body()
    servers = {side: Server(src) for side, src in sides.items()}
    results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    try:
        for server in servers.values():
            server.wait_ready(httpx)
        with httpx.Client(timeout=900) as client:
            for _ in range(repeats):
                for side, server in servers.items():
                    tree = process_tree(server.process.pid)
                    for pid in tree:
                        reset_peak(pid)
                    sampler = Sampler(server.process.pid)
                    cpu = cpu_seconds(tree)
                    t = time.perf_counter()
                    answer = client.post(
                        f"{server.url}/train/gbm",
                        content=payload,
                        headers={"content-type": "application/json"},
                    )
                    wall = time.perf_counter() - t
                    sampler.stop()
                    answer.raise_for_status()
                    stages = answer.json()["durationMs"]
                    worker_ms = sum(stages.get(k, 0.0) for k in WORKER_STAGES)
                    workers = server.workers()
                    results[side].append(
                        {
                            "wall": wall,
                            "cpu": cpu_seconds(process_tree(server.process.pid)) - cpu,
                            "parse": stages["parse"] / 1000,
                            "load+ipc": (stages["total"] - stages["parse"] - worker_ms) / 1000,
                            "train": stages["train"] / 1000,
                            "worker_hwm_mb": max(memory_kb(p).get("VmHWM", 0) for p in workers) / 1024,
                            "worker_anon_mb": max(sampler.anon.get(p, 0) for p in workers) / 1024,
                            "tree_pss_mb": sampler.pss / 1024,
                        }
                    )
    finally:
        for server in servers.values():
            server.stop()
    print(
        f"\nPOST /train/gbm, {ROWS:,} x {FEATURES} JSON columns ({len(payload) / 1e6:.0f} MB), "
        f"median of {repeats}"
    )
    keys = ["wall", "cpu", "parse", "load+ipc", "train", "worker_hwm_mb", "worker_anon_mb", "tree_pss_mb"]
    print(f"{'side':<8}" + "".join(f"{k:>16}" for k in keys))
    for side, rows in results.items():
        print(f"{side:<8}" + "".join(f"{statistics.median(r[k] for r in rows):>16.2f}" for k in keys))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before-ref", required=True, help="git commit whose src/ is the 'before' side")
    parser.add_argument("--part", choices=("pool", "http", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.before_ref, "src"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        sides = {"before": Path(tmp) / "src", "after": ROOT / "src"}
        print(f"before: {args.before_ref}, after: the working tree; load average {os.getloadavg()[0]:.2f}")
        if args.part in ("pool", "both"):
            pool_part(sides, args.repeats)
        if args.part in ("http", "both"):
            http_part(sides, args.repeats)
    print(f"\nmachine: {os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
