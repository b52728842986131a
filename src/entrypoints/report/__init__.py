"""`ml-worker report`: any result of the worker (a training answer, or an analysis result as
/status returns it or the CLI writes it) as one self-contained HTML page with charts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from entrypoints.report.content import content_page
from entrypoints.report.drift import drift_page
from entrypoints.report.page import Page
from entrypoints.report.policies import policies_page
from entrypoints.report.segments import segments_page
from entrypoints.report.training import training_page

# The job types of /status, and the key that marks each result when it comes bare.
_PAGES: dict[str, tuple[str, Callable[[Mapping[str, Any]], Page]]] = {
    "gbm_training": ("modelState", training_page),
    "segmentation": ("segments", segments_page),
    "policy_analysis": ("frequencyBands", policies_page),
    "content_analysis": ("topTerms", content_page),
    "drift_analysis": ("fields", drift_page),
}
KINDS = tuple(_PAGES)


class NotAResult(ValueError):
    """The document is none of the worker's results."""


def result_kind(document: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The job type of a result and the result itself (a /status document is unwrapped)."""
    if isinstance(document.get("result"), Mapping) and document.get("type") in _PAGES:
        return str(document["type"]), document["result"]
    if "result" in document and "status" in document and document.get("result") is None:
        raise NotAResult(f"the job is {document.get('status')!r}: it has no result yet")
    for kind, (marker, _page) in _PAGES.items():
        if marker in document:
            return kind, document
    raise NotAResult(
        "not a result of the worker: expected a /train/gbm answer, a /status document or an analysis "
        f"result (one of the keys {', '.join(marker for marker, _ in _PAGES.values())})"
    )


def render_report(document: Mapping[str, Any]) -> str:
    kind, result = result_kind(document)
    return _PAGES[kind][1](result).render()
