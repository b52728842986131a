"""A caller that hangs up on `/train/gbm` cancels its training: through a real uvicorn server and a
real process pool, the compute slot is free again long before the training would have ended."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest

from support.app import make_app
from support.eventually import eventually_sync
from support.processes import alive
from support.raw_server import serving

pytestmark = pytest.mark.timeout(180)


def long_training() -> bytes:
    """Thousands of small trees over 50,000 rows: minutes on one thread, a model of a few MB."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50_000, 6))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=50_000) > 0).astype(int)
    columns: dict[str, Any] = {f"x{i}": x[:, i].round(5).tolist() for i in range(6)} | {"y": y.tolist()}
    params = {"numIterations": 10_000, "numLeaves": 4, "learningRate": 0.001, "minDataInLeaf": 1}
    return json.dumps({"data": {"columns": columns}, "label": "y", "params": params}).encode()


def busy(base_url: str) -> int:
    return int(httpx.get(f"{base_url}/health", timeout=10).json()["compute"]["busy"])


def test_a_client_that_disconnects_cancels_its_training_and_frees_the_slot() -> None:
    app = make_app(compute="process", workers=1, threads_per_task=1, train_timeout_seconds=600)
    body = long_training()
    with serving(app) as served:
        [worker] = app.state.services.runner.worker_pids()
        with served.connect() as sock:
            sock.sendall(
                b"POST /train/gbm HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            )
            eventually_sync(lambda: busy(served.base_url), lambda n: n == 1, timeout=60, what="training")
        # The socket is closed: the server hears the disconnect and the pool stops the process.
        eventually_sync(lambda: busy(served.base_url), lambda n: n == 0, timeout=60, what="slot free")
        assert not alive(worker), "the training's process was left running"
        # The pool replaced it, and the next training runs at once.
        small = {"x": [float(i % 7) for i in range(200)], "y": [i % 2 for i in range(200)]}
        answer = httpx.post(
            f"{served.base_url}/train/gbm",
            json={"data": {"columns": small}, "label": "y", "params": {"numIterations": 5}},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        assert app.state.services.runner.worker_pids() != [worker]
        metrics = httpx.get(f"{served.base_url}/metrics", timeout=10).text
    assert 'route="/train/gbm",status="499"' in metrics
    assert 'route="/train/gbm",status="500"' not in metrics
