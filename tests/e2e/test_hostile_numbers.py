"""Hostile numbers through the HTTP API: extreme doubles, integers past 64 bits, instants at the
calendar's edges and the JSON literals JSON does not have. Each is the caller's mistake or a value
the analysis handles; never an INTERNAL job or a 5xx.

The reproductions come first (each was an INTERNAL failure), then the non-standard literals on every
parse path, then one seeded property-based test per operation over tests/support/hostile_bodies.py
(`ML_WORKER_FUZZ_EXAMPLES` per operation, 100 by default; bench/fuzz_requests.py runs thousands).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from support.app import app_client, make_app, started
from support.hostile_bodies import OPERATIONS, Body, outcome, problems
from support.http import error_of, fields_of, finished_job

pytestmark = pytest.mark.timeout(300)

EXAMPLES = int(os.environ.get("ML_WORKER_FUZZ_EXAMPLES", "100"))


async def _job(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 202, response.text
    return await finished_job(client, response.headers["location"])


# ----------------------------------------------------------------------------- segmentation


def _clustered(scale: float, n: int = 120) -> dict[str, list[Any]]:
    rng = np.random.default_rng(7)
    centre = rng.choice([-1.0, 1.0], n)
    return {
        "wealth": [float(v) for v in (centre + rng.normal(0, 0.1, n)) * scale],
        "visits": [float(v) for v in centre * 3 + rng.normal(0, 0.3, n)],
    }


async def test_a_field_near_the_double_range_segments_as_it_would_in_small_units() -> None:
    """Standardising 1e308-sized values overflowed to NaN (an INTERNAL job); z-scores do not depend on
    a field's units, so the segments must be those of the same data in small units."""
    async with app_client() as client:
        huge = await _job(client, "/analyze/segments", {"data": {"columns": _clustered(1e307)}})
        plain = await _job(client, "/analyze/segments", {"data": {"columns": _clustered(1.0)}})
    assert huge["status"] == "completed", huge
    assert (huge["result"]["k"], plain["result"]["k"]) == (2, 2)
    for big, small in zip(huge["result"]["segments"], plain["result"]["segments"], strict=True):
        assert big["size"] == small["size"]
        wealth = next(c for c in big["characteristics"] if c["field"] == "wealth")
        plain_wealth = next(c for c in small["characteristics"] if c["field"] == "wealth")
        # In the caller's units, finite, and the same z as in small units.
        assert math.isclose(wealth["segmentValue"], plain_wealth["segmentValue"] * 1e307, rel_tol=1e-9)
        assert math.isclose(wealth["difference"], plain_wealth["difference"], rel_tol=1e-9)


async def test_a_column_of_the_largest_doubles_with_nulls_is_imputed_and_segmented() -> None:
    n = 60
    columns = {
        "a": [None if i % 10 == 0 else (1.7976931348623157e308 if i % 2 else -1e308) for i in range(n)],
        "b": [float(i % 3) for i in range(n)],
    }
    async with app_client() as client:
        job = await _job(client, "/analyze/segments", {"data": {"columns": columns}})
    assert job["status"] == "completed", job
    assert job["result"]["imputed"] == {"a": 6}


# ----------------------------------------------------------------------------- content


def _creatives(n: int = 60, **overrides: list[Any]) -> dict[str, list[Any]]:
    rng = np.random.default_rng(5)
    words = ["free", "shipping", "sale", "urgent", "final", "notice", "new", "today"]
    subjects = [" ".join(rng.choice(words, 3)) for _ in range(n)]
    impressions = rng.integers(500, 5000, n)
    clicks = rng.binomial(impressions, [0.06 if "free" in s else 0.02 for s in subjects])
    columns: dict[str, list[Any]] = {
        "id": list(range(n)),
        "channel": rng.choice(["email", "push"], n).tolist(),
        "subject": subjects,
        "impressions": impressions.tolist(),
        "clicks": clicks.tolist(),
        "conversions": (clicks // 10).tolist(),
    }
    return {**columns, **overrides}


@pytest.mark.parametrize("value", [1e308, 10**30, 2**53 + 1])
async def test_counts_beyond_2_53_fail_the_job_naming_the_column(value: float) -> None:
    """1e308 impressions overflowed the channel sums (NaN weights: an INTERNAL job); 10**30 made a
    count JSON could not write."""
    columns = _creatives()
    columns["impressions"] = [value, *columns["impressions"][1:]]
    async with app_client() as client:
        job = await _job(
            client, "/analyze/content", {"data": {"columns": columns}, "textFields": ["subject"]}
        )
    assert job["status"] == "failed"
    assert job["error"]["code"] == "VALIDATION_ERROR"
    assert job["error"]["message"].startswith("'impressions': 1 values beyond ±2**53")


async def test_min_impressions_past_its_maximum_is_refused_before_any_job() -> None:
    async with app_client() as client:
        response = await client.post(
            "/analyze/content",
            json={"data": {"columns": _creatives()}, "textFields": ["subject"], "minImpressions": 10**30},
        )
    assert fields_of(error_of(response, 422, "VALIDATION_ERROR")) == ["minImpressions"]


async def test_a_rate_over_less_than_one_trial_is_undefined_not_infinite() -> None:
    """5e-324 impressions made infinite precision weights (an INTERNAL job); below one trial the
    target is undefined, as with none."""
    columns = _creatives()
    columns["impressions"] = [5e-324] * 10 + columns["impressions"][10:]
    columns["clicks"] = [0] * 10 + columns["clicks"][10:]
    async with app_client() as client:
        job = await _job(
            client,
            "/analyze/content",
            {"data": {"columns": columns}, "textFields": ["subject"], "minImpressions": 0},
        )
    assert job["status"] == "completed", job
    assert job["result"]["excluded"] == {"noImpressions": 10}


# ----------------------------------------------------------------------------- policies


def _log(start: datetime, n: int = 120, stamp: Any = None) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        at = start + timedelta(hours=5 * i)
        rows.append(
            {
                "customerId": f"c{i % 12}",
                "channel": ("email", "sms")[i % 2],
                "timestamp": at.isoformat().replace("+00:00", "Z"),
                "interactionType": ("impression", "impression", "click", "conversion")[i % 4],
            }
        )
    if stamp is not None:
        rows[0]["timestamp"] = stamp
    return rows


@pytest.mark.parametrize("as_of", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
async def test_as_of_outside_the_calendar_in_utc_is_refused_naming_it(as_of: str) -> None:
    body = {"data": {"rows": _log(datetime(2024, 1, 1, tzinfo=UTC))}, "asOf": as_of}
    async with app_client() as client:
        response = await client.post("/analyze/policies", json=body)
    assert fields_of(error_of(response, 422, "VALIDATION_ERROR")) == ["asOf"]


async def test_as_of_on_the_first_day_of_the_calendar_is_a_window_starting_there() -> None:
    """asOf 0001-01-01 put the window's start in year 0 ("year 0 is out of range": INTERNAL)."""
    rows = _log(datetime(1, 1, 1, tzinfo=UTC), n=40)
    body = {"data": {"rows": rows}, "asOf": "0001-01-01T23:00:00Z", "minSamplesPerBand": 1}
    async with app_client() as client:
        job = await _job(client, "/analyze/policies", body)
    assert job["status"] == "completed", job
    window = job["result"]["summary"]["window"]
    assert (window["from"], window["to"]) == ("0001-01-01T00:00:00Z", "0001-01-01T23:00:00Z")


@pytest.mark.parametrize(
    "stamp", ["0000-06-01T00:00:00Z", "10000-01-01T00:00:00Z", "-0001-01-01T00:00:00Z", "1e308"]
)
async def test_timestamps_outside_the_calendar_are_counted_unparseable(stamp: str) -> None:
    body = {"data": {"rows": _log(datetime(2024, 1, 1, tzinfo=UTC), stamp=stamp)}}
    async with app_client() as client:
        job = await _job(client, "/analyze/policies", body)
    assert job["status"] == "completed", job
    assert job["result"]["summary"]["unparseableTimestamps"] == 1


# ----------------------------------------------------------------------------- GBM


def _training(n: int = 60) -> dict[str, list[Any]]:
    rng = np.random.default_rng(3)
    signal = rng.normal(size=n)
    return {"signal": signal.round(4).tolist(), "converted": (signal > 0).astype(int).tolist()}


@pytest.mark.parametrize(
    ("param", "refused", "bound"),
    [("minSumHessianInLeaf", 0.0, 1e-12), ("scalePosWeight", 1e-9, 1e-6), ("scalePosWeight", 1e9, 1e6)],
)
async def test_hessian_scales_lightgbm_cannot_count_are_refused(
    param: str, refused: float, bound: float
) -> None:
    """Below these bounds LightGBM's own row counting fails on saturated leaves ("left_count > 0":
    500 INTERNAL, found by bench/fuzz_requests.py); at them, the smallest leaves still train."""
    body: dict[str, Any] = {"data": {"columns": _training()}, "label": "converted"}
    small_leaves = {"minDataInLeaf": 1, "numLeaves": 63, "numIterations": 50}
    async with app_client() as client:
        no = await client.post("/train/gbm", json={**body, "params": {**small_leaves, param: refused}})
        yes = await client.post("/train/gbm", json={**body, "params": {**small_leaves, param: bound}})
    assert fields_of(error_of(no, 422, "VALIDATION_ERROR")) == [f"params.{param}"]
    assert yes.status_code == 200, yes.text


async def test_a_boolean_category_gets_a_parity_fixture_without_an_unseen_value() -> None:
    """The fixture's edge rows wrote 987654321 into a boolean category: its frame failed to build
    (500 INTERNAL, found by bench/fuzz_requests.py). A boolean has no unseen value; null stays."""
    columns = {**_training(), "flag": [None if i % 3 else i % 2 == 0 for i in range(60)]}
    body = {
        "data": {"columns": columns},
        "label": "converted",
        "categoricalFeatures": ["flag"],
        "includeParityFixture": True,
    }
    async with app_client() as client:
        response = await client.post("/train/gbm", json=body)
    assert response.status_code == 200, response.text
    flags = {row["flag"] for row in response.json()["parityFixture"]["rows"]}
    assert flags <= {True, False, None} and None in flags


async def test_a_bagging_fraction_that_bags_no_row_is_refused_naming_it() -> None:
    """LightGBM failed inside on an empty bag ("num_data > 0": 500 INTERNAL). 60 rows with the
    default validation fraction leave 48 to train on; LightGBM's bag of exactly 1/48 is empty too."""
    body: dict[str, Any] = {"data": {"columns": _training()}, "label": "converted"}
    async with app_client() as client:
        refused = await client.post(
            "/train/gbm", json={**body, "params": {"baggingFraction": 1 / 48, "baggingFreq": 1}}
        )
        trained = await client.post(
            "/train/gbm", json={**body, "params": {"baggingFraction": 1.01 / 48, "baggingFreq": 1}}
        )
    error = error_of(refused, 422, "VALIDATION_ERROR")
    assert fields_of(error) == ["params.baggingFraction"] and "above 1/48" in error["message"]
    assert trained.status_code == 200, trained.text


# ----------------------------------------------------------------------------- NaN and Infinity

_LITERAL_CASES = [
    ("/analyze/segments", '{"data": {"rows": [{"a": 1}, {"a": %s}, {"a": 3}]}}', "data.rows.1.a"),
    ("/analyze/segments", '{"data": {"columns": {"a": [1, %s, 3]}}}', "data.columns.a.1"),
    ("/analyze/segments", '{"data": {"columns": {"a": [1, 2, 3]}}, "eps": %s}', "eps"),
    ("/analyze/policies", '{"data": {"rows": [{"a": 1}]}, "alpha": %s}', "alpha"),
    (
        "/train/gbm",
        '{"data": {"columns": {"y": [0, 1]}}, "label": "y", "params": {"lambdaL1": %s}}',
        "params.lambdaL1",
    ),
    ("/analyze/content", '{"data": {"columns": {"id": [1]}}, "minImpressions": %s}', "minImpressions"),
]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize(("path", "template", "field"), _LITERAL_CASES)
async def test_non_standard_literals_are_400_on_every_path(
    path: str, template: str, field: str, literal: str
) -> None:
    """`NaN` and `Infinity` are not JSON; the columns path (orjson) refused them, the generic path
    (pydantic) took them as numbers. 1e400 is JSON but no double: read as infinity, refused alike."""
    async with app_client() as client:
        response = await client.post(
            path, content=template % literal, headers={"content-type": "application/json"}
        )
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert fields_of(error) == [field]


async def test_null_stays_the_missing_value() -> None:
    columns = {"a": [None, *range(1, 40)], "b": [float(i % 4) for i in range(40)]}
    async with app_client() as client:
        for data in (
            {"columns": columns},
            {"rows": [dict(zip(columns, v, strict=True)) for v in zip(*columns.values(), strict=True)]},
        ):
            job = await _job(client, "/analyze/segments", {"data": data})
            assert job["status"] == "completed", job
            assert job["result"]["imputed"] == {"a": 1}


# ----------------------------------------------------------------------------- property-based


@pytest.fixture(scope="module")
def hostile_client() -> Iterator[tuple[asyncio.Runner, httpx.AsyncClient]]:
    """One app for every example: its lifespan runs on a loop of its own, so that the (synchronous)
    hypothesis tests can drive it."""
    with asyncio.Runner() as runner:
        stack = AsyncExitStack()
        client = runner.run(stack.enter_async_context(started(make_app())))
        try:
            yield runner, client
        finally:
            runner.run(stack.aclose())


@pytest.mark.parametrize("path", list(OPERATIONS))
def test_hostile_bodies_get_user_facing_answers(
    path: str, hostile_client: tuple[asyncio.Runner, httpx.AsyncClient]
) -> None:
    runner, client = hostile_client

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(OPERATIONS[path])
    def answered(body: Body) -> None:
        result = runner.run(outcome(client, body))
        assert not problems(body, result), (problems(body, result), json.loads(body.raw))

    answered()
