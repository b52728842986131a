"""Through a real uvicorn server (uvloop when installed, as in production): large tasks and results
cross the compute pool's pipes intact."""

from __future__ import annotations

import httpx
import numpy as np


def test_a_large_training_request_succeeds_through_the_production_event_loop(live_server) -> None:  # type: ignore[no-untyped-def]
    # A task far larger than a pipe buffer: an event-loop reader on the pipe once made the send
    # non-blocking under uvloop, and every large request ended WORKER_LOST.
    rng = np.random.default_rng(11)
    x = rng.normal(size=(20_000, 12))
    y = (x[:, 0] + 0.5 * rng.normal(size=20_000) > 0).astype(int)
    columns = {f"x{i}": x[:, i].tolist() for i in range(12)} | {"y": y.tolist()}
    answer = httpx.post(
        f"{live_server.base_url}/train/gbm",
        json={"data": {"columns": columns}, "label": "y", "params": {"numIterations": 30}},
        timeout=300,
    )
    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    assert body["metrics"]["auc"] > 0.85
    assert len(body["modelState"]["trees"]) == 30
