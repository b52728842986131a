"""openapi.yaml's component schemas as JSON Schema validators: what the platform reads, checked on
what the service answers."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

ROOT = Path(__file__).resolve().parents[2]


@cache
def _definitions() -> str:
    schemas = yaml.safe_load((ROOT / "openapi.yaml").read_text())["components"]["schemas"]
    return json.dumps(schemas).replace("#/components/schemas/", "#/$defs/")


@cache
def validator(name: str) -> Any:
    schema = {"$defs": json.loads(_definitions()), "$ref": f"#/$defs/{name}"}
    return jsonschema_rs.Draft202012Validator(schema)


def schema_errors(name: str, document: Any) -> list[str]:
    return [f"{e.instance_path}: {e.message}" for e in validator(name).iter_errors(document)]
