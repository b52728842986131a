"""Which spec each request schema of openapi.yaml fills, and how it spells the spec's fields. The
routes and the CLI use the names to rewrite domain errors; tests/contract/test_spec_bounds.py uses the
whole table to hold the contract's defaults and bounds to the specs'."""

from __future__ import annotations

from dataclasses import dataclass

from domain.content import ContentSpec
from domain.drift import DriftSpec
from domain.gbm.training import GbmTrainingSpec
from domain.policies import PolicySpec
from domain.segmentation import ENGINE_FIELDS, SegmentationSpec
from entrypoints.presenters.content import CONTENT_NAMES
from entrypoints.presenters.drift import DRIFT_NAMES
from entrypoints.presenters.gbm import GBM_NAMES
from entrypoints.presenters.policies import POLICY_NAMES
from entrypoints.presenters.segmentation import SEGMENTATION_NAMES
from entrypoints.presenters.wire import WireNames


@dataclass(frozen=True)
class RequestSpec:
    schema: str  # the request's schema in openapi.yaml's components
    spec_type: type
    names: WireNames
    # Spec fields the request does not expose (engine knobs with measured defaults).
    internal: frozenset[str] = frozenset()


REQUEST_SPECS: list[RequestSpec] = [
    RequestSpec(schema="TrainGbmRequest", spec_type=GbmTrainingSpec, names=GBM_NAMES),
    RequestSpec("SegmentsRequest", SegmentationSpec, SEGMENTATION_NAMES, internal=ENGINE_FIELDS),
    RequestSpec(schema="ContentRequest", spec_type=ContentSpec, names=CONTENT_NAMES),
    RequestSpec(schema="PoliciesRequest", spec_type=PolicySpec, names=POLICY_NAMES),
    RequestSpec(schema="DriftAnalysisRequest", spec_type=DriftSpec, names=DRIFT_NAMES),
]
