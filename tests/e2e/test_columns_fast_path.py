"""`data.columns` bodies take a fast path (orjson, then polars' strict typing): it must refuse what
the contract refuses, naming the column, and accept what the contract accepts."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from starlette.testclient import TestClient

from support.app import make_app


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(make_app()) as test_client:
        yield test_client


def _columns(**extra: list) -> dict:  # type: ignore[type-arg]
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    return {"x": x.tolist(), "y": (x > 0).astype(int).tolist(), **extra}


@pytest.mark.parametrize(
    ("bad", "column"),
    [
        ({"z": [{"a": 1}] * 40}, "z"),
        ({"z": [[1, 2]] * 40}, "z"),
        ({"z": [1, "a"] * 20}, "z"),
    ],
)
def test_cells_that_are_not_scalars_or_mix_types_are_422_naming_the_column(
    client: TestClient, bad: dict, column: str
) -> None:  # type: ignore[type-arg]
    answer = client.post("/train/gbm", json={"data": {"columns": _columns(**bad)}, "label": "y"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
    assert [d["field"] for d in answer.json()["error"]["details"]] == [column]


def test_the_rest_of_the_request_is_still_validated_by_the_contract(client: TestClient) -> None:
    answer = client.post(
        "/train/gbm", json={"data": {"columns": _columns()}, "label": "y", "params": {"numLeaves": 1}}
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["field"] == "params.numLeaves"


def test_a_column_that_is_not_a_list_is_refused_by_the_contract(client: TestClient) -> None:
    answer = client.post("/train/gbm", json={"data": {"columns": {"x": 3}}, "label": "y"})
    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["field"].startswith("data")


def test_the_fast_path_trains_the_same_model_as_the_rows_form(client: TestClient) -> None:
    columns = _columns(region=["north", "south"] * 20, flag=[True, False, None, True] * 10)
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    common = {"label": "y", "validationFraction": 0, "params": {"numIterations": 5, "minDataInLeaf": 2}}
    by_columns = client.post("/train/gbm", json={"data": {"columns": columns}, **common})
    by_rows = client.post("/train/gbm", json={"data": {"rows": rows}, **common})
    assert by_columns.status_code == by_rows.status_code == 200, by_columns.text
    assert by_columns.json()["modelState"]["content_hash"] == by_rows.json()["modelState"]["content_hash"]
