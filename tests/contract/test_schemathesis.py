"""Property-based contract test: schemathesis generates requests from openapi.yaml, sends them to a
real server, and checks every answer against the contract (no 5xx but the documented 503s, status
codes, content types, headers and bodies as declared)."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

ROOT = Path(__file__).resolve().parents[2]
schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")


def _binary_bodies() -> tuple[bytes, bytes]:
    """A small valid Arrow IPC stream and Parquet file, with the column the `request` example names."""
    frame = pl.DataFrame(
        {
            "age": [23.0, 45.0, 31.0, 52.0, 38.0, 61.0] * 4,
            "region": ["north", "south", "east"] * 8,
            "converted": [0, 1, 0, 1, 1, 0] * 4,
        }
    )
    table = frame.to_arrow()
    stream = io.BytesIO()
    with pa.ipc.new_stream(stream, table.schema) as writer:
        writer.write_table(table)
    parquet = io.BytesIO()
    frame.write_parquet(parquet)
    return stream.getvalue(), parquet.getvalue()


def _bodies(valid: bytes) -> st.SearchStrategy[bytes]:
    # Without a strategy schemathesis skips a binary media type; random bytes, the valid body and
    # every cut of it (a truncated upload) must each be a documented answer, never a 5xx.
    return st.one_of(
        st.binary(max_size=4096),
        st.just(valid),
        st.integers(min_value=0, max_value=len(valid) - 1).map(lambda end: valid[:end]),
    )


_ARROW, _PARQUET = _binary_bodies()
schemathesis.openapi.media_type("application/vnd.apache.arrow.stream", _bodies(_ARROW))
schemathesis.openapi.media_type("application/vnd.apache.parquet", _bodies(_PARQUET))


@schema.hook
def map_case(context, case):  # type: ignore[no-untyped-def]
    """`?request=` goes with binary bodies only. Given with a JSON body it is refused before the body
    is read (tests/e2e/test_binary_bodies.py); left in, it would end nearly every JSON case there."""
    if case.media_type == "application/json" and case.query:
        case.query.pop("request", None)
    return case


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
