"""The JSON form in which every job store keeps results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from domain.errors import ValidationFailed


def _json_default(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def encode_result(result: Mapping[str, Any]) -> bytes:
    """A job result as UTF-8 JSON, the form every store keeps. Numpy scalars and arrays are accepted
    (analyzers return them); NaN and infinities become null, as JSON has no spelling for them."""
    if not isinstance(result, Mapping):
        raise ValidationFailed("a job result must be a JSON object")
    try:
        return orjson.dumps(
            result, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        )
    except orjson.JSONEncodeError as exc:
        raise ValidationFailed(f"job result is not JSON-serialisable: {exc}") from exc
