"""The app serves exactly the operations openapi.yaml declares, and serves the yaml itself."""

from __future__ import annotations

from pathlib import Path

import yaml
from fastapi.routing import APIRoute
from openapi_spec_validator import validate

from support.app import make_app

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "post", "put", "patch", "delete"}


def _contract() -> dict:
    return yaml.safe_load((ROOT / "openapi.yaml").read_text())


def test_openapi_yaml_is_a_valid_openapi_document() -> None:
    validate(_contract())


def test_app_routes_methods_and_operation_ids_equal_the_contract() -> None:
    declared = {
        (path, method.upper(), operation["operationId"])
        for path, item in _contract()["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }
    app = make_app()
    served = {
        (route.path, method, route.operation_id)
        for route in app.routes
        # The documentation pages (/docs, /redoc, their assets) are not operations of the API.
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    assert served == declared


def test_the_served_openapi_document_is_the_contract() -> None:
    app = make_app()
    assert app.openapi() == _contract()


def test_every_operation_documents_the_error_envelope_for_its_error_statuses() -> None:
    contract = _contract()
    responses = contract["components"]["responses"]
    for path, item in contract["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                if not status.startswith(("4", "5")):
                    continue
                resolved = responses[response["$ref"].rsplit("/", 1)[1]] if "$ref" in response else response
                schema = resolved["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"} or path == "/health", (
                    f"{method.upper()} {path} {status} does not use the error envelope"
                )
