"""Memory bombs against a real `ml-worker serve`: how many are refused before any work, and the
largest RSS of the server's process tree (server + compute processes) seen meanwhile.

The server runs this checkout's code (PYTHONPATH=src) on 127.0.0.1 with ML_WORKER_MEMORY_LIMIT_MB
(4096 by default: a 4 GiB pod). Each bomb is a request whose cost grows with a product of parameters
(the two reproduced in issue 13 among them) or an integer past LightGBM's C int; an ordinary training
runs first and last, to show the limits refuse no ordinary work and the server still serves.

    PYTHONPATH=src .venv/bin/python bench/memory_bombs.py [--limit-mb 4096]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from served import Server

ROOT = Path(__file__).resolve().parents[1]


def columns(rows: int, features: int, seed: int = 0) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(rows, features)), 4)
    data: dict[str, list[Any]] = {f"x{i}": x[:, i].tolist() for i in range(features)}
    data["y"] = (x[:, 0] + rng.normal(size=rows) > 0).astype(int).tolist()
    return data


def categories(rows: int, fields: int) -> dict[str, list[Any]]:
    return {f"c{i}": [f"v{(j * (i + 3)) % 101}" for j in range(rows)] for i in range(fields)}


def bombs() -> list[tuple[str, str, dict[str, Any]]]:
    data_40k = {"columns": columns(40_000, 20)}
    data_20k = {"columns": columns(20_000, 10, seed=1)}
    train = "/train/gbm"
    wide = categories(50_000, 30)
    return [
        (
            "40,000x20, 4096 leaves, 65535 bins, minDataInLeaf 1 (issue 13)",
            train,
            {
                "data": data_40k,
                "label": "y",
                "params": {"numLeaves": 4096, "maxBin": 65535, "minDataInLeaf": 1},
            },
        ),
        (
            "20,000x10, 200 trees of 4096 leaves (issue 13: 280 MB of JSON)",
            train,
            {
                "data": data_20k,
                "label": "y",
                "params": {"numIterations": 200, "numLeaves": 4096, "minDataInLeaf": 1},
            },
        ),
        (
            "40,000x20, 2048 leaves, 16383 bins",
            train,
            {
                "data": data_40k,
                "label": "y",
                "params": {"numLeaves": 2048, "maxBin": 16383, "minDataInLeaf": 2},
            },
        ),
        (
            "20,000x10, 10000 trees of 1024 leaves",
            train,
            {
                "data": data_20k,
                "label": "y",
                "params": {"numIterations": 10000, "numLeaves": 1024, "minDataInLeaf": 5},
            },
        ),
        (
            "150,000 x 20 categoricals of 101 values one-hot (3,060 dense columns)",
            train,
            {
                "data": {"columns": categories(150_000, 20) | {"y": [i % 2 for i in range(150_000)]}},
                "label": "y",
                "maxCategories": 1000,
            },
        ),
        (
            "minDataInLeaf 2^31 (was a 500)",
            train,
            {"data": data_20k, "label": "y", "params": {"minDataInLeaf": 2**31}},
        ),
        (
            "maxCatThreshold 2^31 (was a 500)",
            train,
            {"data": data_20k, "label": "y", "params": {"maxCatThreshold": 2**31}},
        ),
        (
            "minDataPerGroup 2^31 (was a 500)",
            train,
            {"data": data_20k, "label": "y", "params": {"minDataPerGroup": 2**31}},
        ),
        (
            "segments: 50,000 rows x 30 fields x 100 categories, 50 clusters",
            "/analyze/segments",
            {"data": {"columns": wide}, "fields": list(wide), "maxCategories": 100, "maxClusters": 50},
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit-mb", type=float, default=4096)
    args = parser.parse_args()
    ordinary = {"data": {"columns": columns(100_000, 20, seed=2)}, "label": "y"}
    server = Server(ML_WORKER_MEMORY_LIMIT_MB=str(args.limit_mb))
    refused, rows = 0, []
    try:
        with httpx.Client(base_url=server.url, timeout=600) as client:
            cases = [("ordinary: 100,000x20, LightGBM defaults", "/train/gbm", ordinary), *bombs()]
            cases.append(("ordinary again, after the bombs", "/train/gbm", ordinary))
            for name, path, body in cases:
                encoded = json.dumps(body).encode()
                start = time.perf_counter()
                response = client.post(path, content=encoded, headers={"content-type": "application/json"})
                seconds = time.perf_counter() - start
                code = response.json().get("error", {}).get("code", "") if response.status_code >= 400 else ""
                is_bomb = not name.startswith("ordinary")
                refused += is_bomb and response.status_code == 422
                rows.append((name, response.status_code, code, seconds, len(encoded)))
                message = response.json().get("error", {}).get("message", "")[:150] if code else ""
                print(f"{response.status_code} {code:<17} {seconds:6.2f} s  {name}  {message}", flush=True)
            health = client.get("/health").status_code
    finally:
        server.stop()
    total = sum(not name.startswith("ordinary") for name, *_ in rows)
    print()
    print(f"limit {args.limit_mb:.0f} MB; load average {os.getloadavg()[0]:.2f}")
    print(f"bombs refused before work: {refused} of {total}")
    print(
        f"server process tree RSS: idle {server.idle_rss / 2**20:.0f} MB, largest seen "
        f"{server.peak_rss / 2**20:.0f} MB; /health after: {health}"
    )


if __name__ == "__main__":
    main()
