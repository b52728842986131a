"""Which spec each request schema of openapi.yaml fills, and how it spells the spec's fields. The
routes and the CLI use the names to rewrite domain errors; tests/contract/test_spec_bounds.py uses the
whole table to hold the contract's defaults and bounds to the specs'."""

from __future__ import annotations

from dataclasses import dataclass

from domain.policies import PolicySpec
from entrypoints.presenters.policies import POLICY_NAMES
from entrypoints.presenters.wire import WireNames


@dataclass(frozen=True)
class RequestSpec:
    schema: str  # the request's schema in openapi.yaml's components
    spec_type: type
    names: WireNames
    # Spec fields the request does not expose (engine knobs with measured defaults).
    internal: frozenset[str] = frozenset()


REQUEST_SPECS: list[RequestSpec] = []

REQUEST_SPECS.append(RequestSpec(schema="PoliciesRequest", spec_type=PolicySpec, names=POLICY_NAMES))
