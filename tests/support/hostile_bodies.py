"""Hostile request bodies, one strategy per operation, and the check every answer must pass.

A body is an ordinary request (small seeded data that would analyse fine) with damage drawn on top:
columns overwritten with hostile values (hostile_values.py), spec fields set to extremes, the data sent
as `rows` or as `columns` (the generic and the fast parse paths), and now and then a non-standard
literal (`NaN`, `Infinity`) written into the JSON. The data is generated from a drawn seed rather than
cell by cell, so examples are cheap and shrink to the damage that matters.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import strategies as st

from support.hostile_values import (
    DAMAGES,
    EDGE_INSTANTS,
    NON_STANDARD_LITERALS,
    damaged,
    hostile_instants,
    hostile_numbers,
    hostile_scalars,
)
from support.http import finished_job
from support.schemas import schema_errors

Columns = dict[str, list[Any]]
# Codes a caller may be answered with; INTERNAL and WORKER_LOST are the service's own failures, and a
# TIMEOUT on data this small would be a hang.
NOT_USER_FACING = frozenset({"INTERNAL", "WORKER_LOST", "TIMEOUT"})
_RESULT_SCHEMAS = {"/train/gbm": "TrainGbmResponse"}


@dataclass(frozen=True)
class Body:
    path: str
    raw: bytes
    literal: str | None  # the non-standard literal written into the JSON, if any

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return f"Body({self.path}, literal={self.literal}, {self.raw[:600]!r})"


@dataclass(frozen=True)
class Outcome:
    status: int  # of the answer to the POST
    code: str | None  # the error code: of the answer, or of the failed job
    job_status: str | None  # the job's final status, for a 202
    schema_errors: tuple[str, ...]  # of a 200 answer or a completed job, against openapi.yaml
    message: str = ""

    @property
    def label(self) -> str:
        """One bucket for the fuzz figures: `202 completed`, `422 VALIDATION_ERROR`, `202 failed ...`."""
        parts = [str(self.status), self.job_status or "", self.code or ""]
        return " ".join(part for part in parts if part)


async def outcome(client: httpx.AsyncClient, body: Body) -> Outcome:
    response = await client.post(body.path, content=body.raw, headers={"content-type": "application/json"})
    if response.status_code == 202:
        job = await finished_job(client, response.headers["location"])
        error = job.get("error") or {}
        errors = schema_errors("Job", job) if job["status"] == "completed" else []
        return Outcome(202, error.get("code"), job["status"], tuple(errors[:3]), error.get("message", ""))
    document = response.json()
    if response.status_code == 200:
        errors = schema_errors(_RESULT_SCHEMAS[body.path], document)
        return Outcome(200, None, None, tuple(errors[:3]))
    error = document["error"]
    return Outcome(response.status_code, error["code"], None, (), error["message"])


def problems(body: Body, result: Outcome) -> list[str]:
    """What is wrong with the answer to `body`; empty when it is a user-facing answer."""
    found = []
    if result.status >= 500:
        found.append(f"answered {result.status} {result.code}")
    if result.code in NOT_USER_FACING:
        found.append(f"failed with {result.code}")
    if "not JSON-serialisable" in result.message:
        # A result the job store cannot write is the service's failure, whatever its code says.
        found.append(f"failed at the store: {result.message}")
    if body.literal is not None and (result.status, result.code) != (400, "VALIDATION_ERROR"):
        found.append(f"{body.literal} in the JSON answered {result.label}, not 400 VALIDATION_ERROR")
    found.extend(f"result off its schema: {error}" for error in result.schema_errors)
    return found


# ----------------------------------------------------------------------------- building bodies


def _rows(columns: Columns) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, cells, strict=True)) for cells in zip(*columns.values(), strict=True)]


@st.composite
def _damage(draw: st.DrawFn, columns: Columns, values: Callable[[str], st.SearchStrategy[Any]]) -> Columns:
    """Up to three damages, each to one existing column (or a new one)."""
    names = [*columns, "extra"]
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(names))
        base = columns.get(name) or next(iter(columns.values()))
        damage = draw(st.sampled_from(DAMAGES))
        columns[name] = damaged(list(base), damage, draw(values(name)), draw(st.integers(2, 7)))
    return columns


@st.composite
def _finish(draw: st.DrawFn, path: str, columns: Columns, spec: dict[str, Any], spec_float: str) -> Body:
    """The body as JSON, in the rows or the columns form, with a non-standard literal one time in
    four: in a cell or in the spec's float field `spec_float` (a dotted path)."""
    data = {"columns": columns} if draw(st.booleans()) else {"rows": _rows(columns)}
    document: dict[str, Any] = {"data": data, **spec}
    literal = draw(st.sampled_from((None,) * 9 + NON_STANDARD_LITERALS))
    if literal is not None:
        value = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[literal]
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(columns)))
            cells = [value, *columns[name][1:]]
            if "rows" in data:
                data["rows"][0][name] = value
            else:
                data["columns"] = {**columns, name: cells}
        else:
            *parents, leaf = spec_float.split(".")
            target = document
            for part in parents:
                if not isinstance(target.get(part), dict):
                    target[part] = {}  # a wild number where the object was
                target = target[part]
            target[leaf] = value
    return Body(path, json.dumps(document, allow_nan=True).encode(), literal)


@st.composite
def _spec(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """Some of the fields, each within the contract's range but at its edges; in one body of eight,
    one field set to any hostile number (which the contract mostly refuses with 422)."""
    spec: dict[str, Any] = draw(st.fixed_dictionaries({}, optional=fields))
    if draw(st.sampled_from((False,) * 7 + (True,))):
        spec[draw(st.sampled_from(sorted(fields)))] = draw(hostile_numbers())
    return spec


def _knob(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


# In-range extremes of the contract's kinds of number.
_POSITIVE = (5e-324, 2.2250738585072014e-308, 1e-300, 1e300, 1e308, 1.7976931348623157e308)
_NON_NEGATIVE = (0, -0.0, *_POSITIVE)
_UNIT = (5e-324, 1e-300, 0.5, 1.0, 0.9999999999999999)
# The largest seed the contract accepts (a C int).
_C_INT_MAX = 2**31 - 1


def _numeric_cells(name: str) -> st.SearchStrategy[Any]:
    return st.one_of(hostile_numbers(), hostile_scalars())


_ROWS = st.sampled_from((40, 90, 40, 12, 3))


@st.composite
def segments_bodies(draw: st.DrawFn) -> Body:
    rng = random.Random(draw(st.integers(0, 2**16)))
    n = draw(_ROWS)
    centre = [rng.choice((0.0, 5.0, 10.0)) for _ in range(n)]
    columns: Columns = {
        "age": [round(c + rng.gauss(0, 1), 3) for c in centre],
        "spend": [round(c * 100 + rng.gauss(0, 50), 2) for c in centre],
        "region": [rng.choice(("north", "south", "east")) for _ in range(n)],
    }
    columns = draw(_damage(columns, _numeric_cells))
    spec = draw(
        _spec(
            {
                "fields": st.sampled_from(
                    (None, ["age", "spend"], ["age", "region"], ["region"], ["extra", "age"])
                ),
                "algorithm": st.sampled_from(("kmeans", "dbscan")),
                "minClusters": _knob(2, 3, 50),
                "maxClusters": _knob(3, 8, 50),
                "maxCategories": _knob(1, 10, 100),
                "eps": _knob(None, *_POSITIVE),
                "minSamples": _knob(None, 1, 4, 100_000),
                "randomState": _knob(0, 42, _C_INT_MAX),
                "silhouetteSampleSize": _knob(100, 20000),
            }
        )
    )
    return draw(_finish("/analyze/segments", columns, spec, "eps"))


def _interactions(rng: random.Random, n: int, epochs: bool) -> Columns:
    start = 1_704_067_200  # 2024-01-01
    stamps = sorted(start + rng.randrange(0, 60 * 86_400) for _ in range(n))
    if epochs:
        times: list[Any] = stamps
    else:
        from datetime import UTC, datetime

        times = [datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z") for t in stamps]
    return {
        "customerId": [f"c{rng.randrange(8)}" for _ in range(n)],
        "channel": [rng.choice(("email", "sms", "push")) for _ in range(n)],
        "timestamp": times,
        "interactionType": [rng.choice(("impression",) * 4 + ("click", "conversion")) for _ in range(n)],
        "offerId": [rng.choice(("o1", "o2")) for _ in range(n)],
    }


@st.composite
def policies_bodies(draw: st.DrawFn) -> Body:
    rng = random.Random(draw(st.integers(0, 2**16)))
    columns = _interactions(rng, draw(_ROWS), epochs=draw(st.booleans()))

    def cells(name: str) -> st.SearchStrategy[Any]:
        return hostile_instants() if name == "timestamp" else hostile_scalars()

    columns = draw(_damage(columns, cells))
    as_of = st.one_of(st.none(), st.sampled_from(("2024-03-01T00:00:00Z", *EDGE_INSTANTS)))
    spec = draw(
        _spec(
            {
                "asOf": as_of,
                "lookbackDays": _knob(1, 90, 3650),
                "caps": st.fixed_dictionaries(
                    {},
                    optional={
                        "daily": _knob(1, 3, 1000),
                        "weekly": _knob(1, 10, 7000),
                        "monthly": _knob(1, 30, 31000),
                    },
                ),
                "bands": st.one_of(
                    st.just([1, 3, 5]), st.lists(_knob(1, 2, 7, 7000), min_size=1, max_size=5)
                ),
                "minSamplesPerBand": _knob(1, 30, 10**8),
                "alpha": _knob(0.05, 0.5, *_UNIT[:2], 0.9999999999999999),
                "randomState": _knob(0, 42, _C_INT_MAX),
                "fieldMap": st.sampled_from(({}, {"offerId": "offerId"}, {"customerId": "channel"})),
                "interactionValues": st.sampled_from(({}, {"impression": [""]}, {"click": ["IMPRESSION "]})),
            }
        )
    )
    return draw(_finish("/analyze/policies", columns, spec, "alpha"))


_WORDS = ("free", "shipping", "sale", "urgent", "final", "notice", "new", "today", "gift", "club")


@st.composite
def content_bodies(draw: st.DrawFn) -> Body:
    rng = random.Random(draw(st.integers(0, 2**16)))
    n = draw(st.sampled_from((40, 90, 12)))
    subjects = [" ".join(rng.choice(_WORDS) for _ in range(4)) for _ in range(n)]
    impressions = [rng.randrange(200, 5000) for _ in range(n)]
    clicks = [int(m * (0.06 if "free" in s else 0.02)) for m, s in zip(impressions, subjects, strict=True)]
    columns: Columns = {
        "id": list(range(1, n + 1)),
        "channel": [rng.choice(("email", "push")) for _ in range(n)],
        "subject": subjects,
        "impressions": impressions,
        "clicks": clicks,
        "conversions": [c // 10 for c in clicks],
        "revenue": [round(rng.uniform(0, 100), 2) for _ in range(n)],
    }
    columns = draw(_damage(columns, _numeric_cells))
    spec = draw(
        _spec(
            {
                "textFields": st.sampled_from((["subject"], ["subject", "extra"], ["extra"])),
                "target": st.sampled_from(("ctr", "cvr")),
                "minImpressions": _knob(0, 1, 100, 10**12),
                "topTerms": _knob(1, 20, 200),
                "randomState": _knob(0, 42, _C_INT_MAX),
            }
        )
    )
    spec.setdefault("textFields", ["subject"])
    return draw(_finish("/analyze/content", columns, spec, "minImpressions"))


@st.composite
def train_gbm_bodies(draw: st.DrawFn) -> Body:
    rng = random.Random(draw(st.integers(0, 2**16)))
    n = draw(_ROWS)
    signal = [rng.gauss(0, 1) for _ in range(n)]
    columns: Columns = {
        "id": list(range(n)),
        "signal": [round(s, 4) for s in signal],
        "noise": [round(rng.gauss(0, 1), 4) for _ in range(n)],
        "colour": [rng.choice(("red", "green", "blue")) for _ in range(n)],
        "label": [int(s + rng.gauss(0, 0.5) > 0) for s in signal],
    }
    columns = draw(_damage(columns, _numeric_cells))
    floats = {
        "learningRate": _knob(0.1, *_UNIT),
        "featureFraction": _knob(1.0, *_UNIT),
        "baggingFraction": _knob(1.0, *_UNIT),
        **{
            name: _knob(0.1, *_NON_NEGATIVE)
            for name in ("lambdaL1", "lambdaL2", "minGainToSplit", "catSmooth", "catL2")
        },
        # The contract's floor (LightGBM's split counting fails below it), then the double range.
        "minSumHessianInLeaf": _knob(1e-3, 1e-12, 1.0, 1e300, 1.7976931348623157e308),
        "scalePosWeight": _knob(1.0, 1e-6, 1e6),
        "sigmoid": _knob(1.0, *_POSITIVE),
    }
    integers = {
        "numIterations": _knob(1, 5, 100),
        "numLeaves": _knob(2, 31, 4096),
        "maxDepth": _knob(-1, 1, 64),
        "maxBin": _knob(2, 255, 65535),
        "seed": _knob(0, _C_INT_MAX),
        # The contract's maxima.
        "minDataInLeaf": _knob(1, 20, 10**8),
        "baggingFreq": _knob(0, 1, 10000),
        "maxCatThreshold": _knob(1, 32, 1000),
        "minDataPerGroup": _knob(1, 100, 10**8),
    }
    spec = draw(
        _spec(
            {
                "params": _spec({**floats, **integers, "zeroAsMissing": st.booleans()}),
                "categoricalEncoding": st.sampled_from(("onehot", "native")),
                "maxCategories": _knob(1, 50, 1000),
                "validationFraction": _knob(0.2, 0.0, -0.0, 5e-324, 0.5),
                "earlyStoppingRounds": _knob(None, 1, 5, 10000),
                "features": st.sampled_from((None, ["signal", "noise"], ["colour"], ["extra", "signal"])),
                # Numbers as categories too: native encoding codes them, extremes included.
                "categoricalFeatures": st.sampled_from((None, ["colour"], ["colour", "signal"], ["noise"])),
                "idField": st.sampled_from(("id", None, "noise")),
                "includeParityFixture": st.booleans(),
            }
        )
    )
    spec["label"] = draw(st.sampled_from(("label",) * 6 + ("signal", "colour", "extra")))
    spec.setdefault("params", {})
    return draw(_finish("/train/gbm", columns, spec, "params.learningRate"))


OPERATIONS: dict[str, st.SearchStrategy[Body]] = {
    "/train/gbm": train_gbm_bodies(),
    "/analyze/segments": segments_bodies(),
    "/analyze/policies": policies_bodies(),
    "/analyze/content": content_bodies(),
}
