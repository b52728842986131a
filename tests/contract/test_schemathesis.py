"""Property-based contract test: schemathesis generates requests from openapi.yaml, sends them to a
real server, and checks every answer against the contract (no 5xx but the documented 503s, status
codes, content types, headers and bodies as declared)."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

ROOT = Path(__file__).resolve().parents[2]
schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")


def no_undocumented_server_error(ctx, response, case):  # type: ignore[no-untyped-def]
    """A 5xx is a bug unless it is a documented, enveloped BUSY or DEPENDENCY_UNAVAILABLE answer."""
    if response.status_code >= 500:
        body = response.json() if response.text else {}
        code = body.get("error", {}).get("code")
        assert response.status_code == 503 and code in {"BUSY", "DEPENDENCY_UNAVAILABLE"}, (
            f"{response.status_code} {response.text[:500]}"
        )


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_honours_the_contract(case, live_server) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(
        base_url=live_server.base_url,
        checks=[
            no_undocumented_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
        timeout=120,
    )
