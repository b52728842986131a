"""POST /analyze/content through the real app: the job's result as the platform reads it, and a
request that does not fit its data refused before any job, naming the request's fields."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from support.app import app_client
from support.http import error_of, fields_of, finished_job

pytestmark = pytest.mark.timeout(120)


def creatives(n: int = 200) -> dict[str, list[Any]]:
    rng = np.random.default_rng(5)
    words = ["free", "shipping", "sale", "urgent", "final", "notice", "new", "today", "gift", "club"]
    subjects = [" ".join(rng.choice(words, 4)) for _ in range(n)]
    impressions = rng.integers(500, 5_000, n)
    clicks = rng.binomial(impressions, [0.06 if "free" in s else 0.02 for s in subjects])
    return {
        "id": list(range(1, n + 1)),
        "channel": rng.choice(["email", "push"], n).tolist(),
        "subject": subjects,
        "impressions": impressions.tolist(),
        "clicks": clicks.tolist(),
        "conversions": rng.binomial(clicks, 0.1).tolist(),
    }


async def _submit(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/analyze/content", json={"data": {"columns": creatives()}, **body})


async def test_a_content_job_completes_with_the_contracts_result() -> None:
    async with app_client() as client:
        response = await _submit(client, {"textFields": ["subject"], "schemaId": "s-1", "tenantId": "t-1"})
        assert response.status_code == 202, response.text
        job = await finished_job(client, response.headers["location"])
    assert job["status"] == "completed", job
    assert job["type"] == "content_analysis"
    result = job["result"]
    assert list(result) == [
        "topTerms",
        "channelSummary",
        "creatives",
        "model",
        "excluded",
        "recommendations",
        "warnings",
        "schemaId",
        "tenantId",
    ]
    assert (result["schemaId"], result["tenantId"]) == ("s-1", "t-1")
    top = result["topTerms"][0]
    assert (top["term"], top["direction"]) == ("free", "helps")
    # Integer ids come back as integers, and every creative is reported.
    assert sorted(c["id"] for c in result["creatives"]) == list(range(1, 201))
    assert [s["channel"] for s in result["channelSummary"]] == ["email", "push"]
    assert result["model"]["r2Kind"] == "holdout" and result["model"]["creatives"] == 200
    assert result["recommendations"] and {r["type"] for r in result["recommendations"]} == {"content"}


async def test_a_request_that_does_not_fit_the_data_is_422_naming_itsfields_of() -> None:
    async with app_client() as client:
        no_text = error_of(await _submit(client, {"textFields": ["headline"]}), 422, "VALIDATION_ERROR")
        wrong_column = error_of(
            await _submit(client, {"fieldMap": {"clicks": "subject"}, "textFields": ["subject"]}),
            422,
            "VALIDATION_ERROR",
        )
    assert fields_of(no_text) == ["textFields"]
    # A detail about one of the caller's columns names the column.
    assert fields_of(wrong_column) == ["subject"]


async def test_too_few_creatives_for_the_model_fail_the_job() -> None:
    async with app_client() as client:
        response = await _submit(client, {"textFields": ["subject"], "minImpressions": 10**6})
        assert response.status_code == 202, response.text
        job = await finished_job(client, response.headers["location"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "INSUFFICIENT_DATA"
    assert "the model needs 20" in job["error"]["message"]
