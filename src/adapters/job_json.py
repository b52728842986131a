"""The JSON form in which every job store keeps results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from domain.errors import ValidationFailed


def encode_result(result: Mapping[str, Any]) -> bytes:
    """A job result as UTF-8 JSON, the form every store keeps.

    Results reach a store already JSON-safe (the presenters' `json_ready` pass), so this only
    serialises: a value JSON cannot hold (a set, a numpy scalar, a non-string key) is refused
    (a stray NaN is written as null, orjson's own choice).
    """
    if not isinstance(result, Mapping):
        raise ValidationFailed("a job result must be a JSON object")
    try:
        return orjson.dumps(result if isinstance(result, dict) else dict(result))
    except orjson.JSONEncodeError as exc:
        raise ValidationFailed(f"job result is not JSON-serialisable: {exc}") from exc
