"""Every model a request body is read into refuses NaN and infinities (entrypoints/contract_base.py),
so that the generic parse path agrees with the fast one (orjson) whatever the request; a request
schema that gains a nested object must add its model to scripts/generate-contract's map."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
from pydantic import BaseModel, RootModel

from entrypoints import contract
from entrypoints.contract_base import RequestModel

REQUESTS = [getattr(contract, name) for name in dir(contract) if name.endswith("Request")]


def _reachable(annotation: Any, found: dict[str, type[BaseModel]]) -> dict[str, type[BaseModel]]:
    for argument in typing.get_args(annotation):
        _reachable(argument, found)
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel) and annotation.__name__ not in found:
        found[annotation.__name__] = annotation
        for item in annotation.model_fields.values():
            _reachable(item.annotation, found)
    return found


def _floats(annotation: Any) -> bool:
    return annotation is float or any(_floats(argument) for argument in typing.get_args(annotation))


MODELS = sorted(_reachable(typing.Union[tuple(REQUESTS)], {}).items())  # noqa: UP007


def test_the_five_operations_requests_are_walked() -> None:
    assert {model.__name__ for model in REQUESTS} == {
        "TrainGbmRequest",
        "SegmentsRequest",
        "PoliciesRequest",
        "ContentRequest",
        "DriftAnalysisRequest",
    }
    assert {"GbmParams", "InlineColumns", "Caps"} <= {name for name, _ in MODELS}


@pytest.mark.parametrize(("name", "model"), MODELS, ids=[name for name, _ in MODELS])
def test_every_request_model_refuses_non_finite_numbers(name: str, model: type[BaseModel]) -> None:
    if issubclass(model, RootModel):
        # Root models are strings and integers; integers refuse NaN under any config.
        assert not _floats(model.model_fields["root"].annotation), name
        return
    assert issubclass(model, RequestModel), f"add {name} to scripts/generate-contract's request models"
    assert model.model_config.get("allow_inf_nan") is False
