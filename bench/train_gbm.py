"""POST /train/gbm end to end against raw lightgbm.train, side by side in one run.

    .venv/bin/python bench/train_gbm.py              # 50,000 x 20, 5 repeats
    .venv/bin/python bench/train_gbm.py --large      # also 1,000,000 x 20

The server is `ml-worker serve` on 127.0.0.1 (its default pool: the whole CPU budget for one task);
raw training uses the same params and thread count. Prints medians, the ratio to raw, the server's
stage breakdown and peak RSS (server process tree; raw training in its own process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {"numIterations": 100, "learningRate": 0.1, "numLeaves": 31, "minDataInLeaf": 20, "seed": 42}


def dataset(rows: int, features: int = 20, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    logit = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] * x[:, 3]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


RAW_CHILD = """
import json, resource, sys, time
import numpy as np, lightgbm as lgb
sys.path.insert(0, {bench!r})
from train_gbm import dataset
x, y = dataset({rows})
params = dict(objective="binary", verbosity=-1, num_threads={threads}, deterministic=True,
              force_col_wise=True, learning_rate=0.1, num_leaves=31, min_data_in_leaf=20, seed=42)
times = []
for _ in range({repeats}):
    t = time.perf_counter()
    lgb.train(params, lgb.Dataset(x, label=y), num_boost_round=100)
    times.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"times": times, "peak_rss_mb": peak}}))
"""


def raw_training(rows: int, threads: int, repeats: int) -> dict:
    code = RAW_CHILD.format(bench=str(ROOT / "bench"), rows=rows, threads=threads, repeats=repeats)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


class Server:
    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = {
            **os.environ,
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
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{self.url}/health", timeout=2)
                if health.status_code == 200:
                    self.threads = health.json()["compute"]["threadsPerTask"]
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not start")
        self.peak_rss = 0
        self._stop = threading.Event()
        threading.Thread(target=self._watch_rss, daemon=True).start()

    def _watch_rss(self) -> None:
        root = psutil.Process(self.process.pid)
        while not self._stop.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                self.peak_rss = max(self.peak_rss, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self.process.terminate()
        self.process.wait(30)


def payload(x: np.ndarray, y: np.ndarray, form: str) -> bytes:
    names = [f"x{i}" for i in range(x.shape[1])]
    if form == "columns":
        columns = {name: x[:, i].tolist() for i, name in enumerate(names)}
        columns["label"] = y.tolist()
        data: dict = {"columns": columns}
    else:
        rows = [dict(zip(names, row, strict=True)) for row in x.tolist()]
        for row, label in zip(rows, y.tolist(), strict=True):
            row["label"] = label
        data = {"rows": rows}
    body = {"data": data, "label": "label", "params": PARAMS, "validationFraction": 0.2}
    return json.dumps(body).encode()


def time_requests(server: Server, body: bytes, repeats: int) -> tuple[list[float], list[dict]]:
    times, stages = [], []
    with httpx.Client(timeout=900) as client:
        for _ in range(repeats):
            t = time.perf_counter()
            answer = client.post(
                f"{server.url}/train/gbm", content=body, headers={"content-type": "application/json"}
            )
            elapsed = time.perf_counter() - t
            answer.raise_for_status()
            result = answer.json()
            times.append(elapsed)
            stages.append({**result["durationMs"], "client": elapsed * 1000, "auc": result["metrics"]["auc"]})
    return times, stages


def median_stages(stages: list[dict]) -> dict:
    keys = ["parse", "prepare", "train", "evaluate", "dump", "total", "client"]
    med = {k: statistics.median(s[k] for s in stages) for k in keys}
    worker = med["prepare"] + med["train"] + med["evaluate"] + med["dump"]
    med["load+ipc"] = med["total"] - med["parse"] - worker
    med["serialise+transfer"] = med["client"] - med["total"]
    return med


def run(rows: int, repeats: int) -> None:
    x, y = dataset(rows)
    server = Server()
    try:
        raw = raw_training(rows, server.threads, repeats)
        raw_median = statistics.median(raw["times"])
        print(
            f"\n{rows:,} rows x {x.shape[1]} features, 100 trees, {server.threads} threads, "
            f"median of {repeats}"
        )
        print(f"{'path':<22}{'median s':>10}{'x raw':>8}")
        print(
            f"{'raw lightgbm.train':<22}{raw_median:>10.3f}{1.0:>8.2f}   peak RSS {raw['peak_rss_mb']:.0f} MB"
        )
        for form in ("columns", "rows"):
            body = payload(x, y, form)
            times, stages = time_requests(server, body, repeats)
            med = statistics.median(times)
            print(
                f"{'POST ' + form:<22}{med:>10.3f}{med / raw_median:>8.2f}   body {len(body) / 1e6:.0f} MB, "
                f"AUC {stages[0]['auc']:.4f}"
            )
            breakdown = median_stages(stages)
            print(
                "    stages (ms): "
                + ", ".join(
                    f"{k} {breakdown[k]:.0f}"
                    for k in (
                        "parse",
                        "load+ipc",
                        "prepare",
                        "train",
                        "evaluate",
                        "dump",
                        "serialise+transfer",
                    )
                )
            )
        print(f"server peak RSS (process tree): {server.peak_rss / 1e6:.0f} MB")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--large", action="store_true", help="also 1,000,000 rows (3 repeats)")
    args = parser.parse_args()
    run(args.rows, args.repeats)
    if args.large:
        run(1_000_000, 3)
    print(
        f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"bench peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
