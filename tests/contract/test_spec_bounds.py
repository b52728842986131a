"""One source for every default and bound: the domain's specs. openapi.yaml must declare exactly the
defaults, minimums and maximums of the spec fields its request schemas fill, and no bound the spec
does not have."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.specs import BOUNDS, Bounds
from entrypoints.presenters.specs import REQUEST_SPECS, RequestSpec

SCHEMAS = yaml.safe_load((Path(__file__).parents[2] / "openapi.yaml").read_text())["components"]["schemas"]
_KEYWORDS = {
    "minimum": "minimum",
    "maximum": "maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "exclusiveMaximum": "exclusive_maximum",
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _properties(schema: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """Wire path -> property schema, through nested objects (`caps.weekly`)."""
    found: dict[str, dict[str, Any]] = {}
    for name, prop in _resolve(schema).get("properties", {}).items():
        prop = _resolve(prop)
        found[f"{prefix}{name}"] = prop
        if prop.get("type") in ("object", ["object", "null"]) and "properties" in prop:
            found.update(_properties(prop, f"{prefix}{name}."))
    return found


def _spec_fields(spec_type: type, prefix: str = "") -> dict[str, dataclasses.Field[Any]]:
    found: dict[str, dataclasses.Field[Any]] = {}
    for item in dataclasses.fields(spec_type):
        nested = item.default_factory if item.default_factory is not dataclasses.MISSING else None
        if isinstance(nested, type) and dataclasses.is_dataclass(nested):
            found.update(_spec_fields(nested, f"{prefix}{item.name}."))
        else:
            found[f"{prefix}{item.name}"] = item
    return found


def _default(item: dataclasses.Field[Any]) -> Any:
    if item.default is not dataclasses.MISSING:
        value = item.default
    elif item.default_factory is not dataclasses.MISSING:
        value = item.default_factory()
    else:
        return dataclasses.MISSING
    return list(value) if isinstance(value, tuple) else value


def _wire_bounds(prop: dict[str, Any]) -> dict[str, float]:
    return {_KEYWORDS[key]: prop[key] for key in _KEYWORDS if key in prop}


def _spec_bounds(bounds: Bounds | None) -> dict[str, float]:
    if bounds is None:
        return {}
    values = dataclasses.asdict(bounds)
    return {key: value for key, value in values.items() if value is not None}


def test_every_request_with_a_spec_is_registered() -> None:
    requests = {name for name in SCHEMAS if name.endswith("Request")}
    assert {entry.schema for entry in REQUEST_SPECS} == requests


def _cases() -> list[Any]:
    return [pytest.param(entry, id=entry.schema) for entry in REQUEST_SPECS]


@pytest.mark.parametrize("entry", _cases())
def test_contract_declares_the_specs_defaults_and_bounds(entry: RequestSpec) -> None:
    wire = _properties(SCHEMAS[entry.schema])
    problems = []
    for path, item in _spec_fields(entry.spec_type).items():
        if path in entry.internal:
            continue
        wire_path = entry.names.wire(path)
        prop = wire.get(wire_path)
        if prop is None:
            problems.append(f"{wire_path} (spec {path}) is not in {entry.schema}")
            continue
        spec_default = _default(item)
        declared = "default" in prop or spec_default not in (None, dataclasses.MISSING)
        if declared and prop.get("default", dataclasses.MISSING) != spec_default:
            given = prop.get("default", "(none)")
            problems.append(f"{wire_path}: contract default {given!r}, spec {spec_default!r}")
        spec_bounds = _spec_bounds(item.metadata.get(BOUNDS))
        if _wire_bounds(prop) != spec_bounds:
            problems.append(f"{wire_path}: contract bounds {_wire_bounds(prop)}, spec {spec_bounds}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("entry", _cases())
def test_every_bound_of_the_contract_is_a_spec_bound(entry: RequestSpec) -> None:
    spec_paths = {entry.names.wire(path): path for path in _spec_fields(entry.spec_type)}
    unbacked = [
        wire_path
        for wire_path, prop in _properties(SCHEMAS[entry.schema]).items()
        if _wire_bounds(prop) and wire_path not in spec_paths
    ]
    assert not unbacked, f"bounds in {entry.schema} that no spec field declares: {unbacked}"


# Request fields that are not the analysis's settings: where the data is, identifiers echoed back,
# and how the request is run (`async`: /train/gbm as a job; the route reads it).
NOT_SPEC_FIELDS = {"data", "schemaId", "tenantId", "async"}


@pytest.mark.parametrize("entry", _cases())
def test_every_field_of_the_request_is_a_spec_field(entry: RequestSpec) -> None:
    """A request field without a spec field would be dropped, or fail in the presenter."""
    spec_paths = {entry.names.wire(path) for path in _spec_fields(entry.spec_type)}
    properties = _properties(SCHEMAS[entry.schema])
    groups = {path.rsplit(".", 1)[0] for path in properties if "." in path}
    unbacked = sorted(set(properties) - spec_paths - groups - NOT_SPEC_FIELDS)
    assert not unbacked, f"fields of {entry.schema} that no spec field holds: {unbacked}"
