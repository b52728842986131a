"""Every integer a request can carry has a real maximum in openapi.yaml: an unbounded one reaches a
library as a C int (`minDataInLeaf: 2**31` answered 500) or multiplies the work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONTRACT = yaml.safe_load((Path(__file__).parents[2] / "openapi.yaml").read_text())
SCHEMAS = CONTRACT["components"]["schemas"]


def _request_schemas() -> list[dict[str, Any]]:
    found = []
    for path in CONTRACT["paths"].values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            for media in operation.get("requestBody", {}).get("content", {}).values():
                found.append(media["schema"])
            for parameter in operation.get("parameters", []):
                found.append(parameter.get("schema", {}))
    return found


def _unbounded_integers(schema: Any, where: str, seen: set[str]) -> list[str]:
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return []
        seen.add(name)
        return _unbounded_integers(SCHEMAS[name], name, seen)
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    problems = [where] if "integer" in kinds and "maximum" not in schema else []
    for key, value in schema.get("properties", {}).items():
        problems += _unbounded_integers(value, f"{where}.{key}", seen)
    for key in ("items", "additionalProperties"):
        problems += _unbounded_integers(schema.get(key), f"{where}[]", seen)
    for key in ("oneOf", "anyOf", "allOf"):
        for option in schema.get(key, []):
            problems += _unbounded_integers(option, where, seen)
    return problems


def test_every_request_integer_has_a_maximum() -> None:
    seen: set[str] = set()
    problems = [p for schema in _request_schemas() for p in _unbounded_integers(schema, "request", seen)]
    assert len(seen) > 5  # the walk reached the request schemas
    assert problems == []
