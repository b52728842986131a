"""How each offline command runs: its request mapped to the spec (the HTTP routes' mapping), the
use case, and the wire document the service would return.

The request mapping is imported in this module only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from entrypoints.cli.progress import Progress, showing_progress
from entrypoints.cli.summaries import content_summary, policy_summary, segmentation_summary, training_summary

if TYPE_CHECKING:
    from application.analysis_task import SubmitAnalysis
    from domain.data import FileRef
    from entrypoints import contract as c
    from entrypoints.container import Services

_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Output:
    result: Mapping[str, Any]  # the full JSON result, as the API returns it
    out: Mapping[str, Any]  # what --out gets
    summary: str


async def _analysed(
    services: Services, use_case: SubmitAnalysis[Any], spec: Any, data: FileRef, progress: Progress
) -> dict[str, Any]:
    from application.errors import TaskCancelled, error_from_code
    from domain.jobs import RequestEcho

    job = await use_case.submit(data, spec, RequestEcho())
    while not job.status.is_final:
        progress.update(job.progress, job.message)
        await asyncio.sleep(_POLL_SECONDS)
        job = await services.get_job.execute(job.id)
    if job.result is not None and job.error is None:
        return dict(job.result)
    if job.error is not None:
        raise error_from_code(job.error.code, job.error.message)
    raise TaskCancelled(f"the {job.type} job was cancelled")


async def train_gbm(services: Services, data: FileRef, body: Any, progress: Progress) -> Output:
    from application.train_gbm import TrainGbmCommand
    from entrypoints.presenters import commands as mapping

    started = time.perf_counter()
    command = TrainGbmCommand(data=data, spec=mapping.training_spec(body))
    prepared = time.perf_counter()
    progress.update(None, "training")  # LightGBM reports no fraction
    outcome = await showing_progress(services.train_gbm.execute(command), progress)
    total_ms = round((time.perf_counter() - started) * 1000.0, 3)
    response = mapping.training_response(outcome, round((prepared - started) * 1000.0, 3), total_ms)
    return Output(result=response, out=response["modelState"], summary=training_summary(response))


async def segment(services: Services, data: FileRef, body: c.SegmentsRequest, progress: Progress) -> Output:
    from entrypoints.presenters import commands as mapping

    spec = mapping.segmentation_spec(body)
    result = await _analysed(services, services.segment_customers, spec, data, progress)
    return Output(result=result, out=result, summary=segmentation_summary(result))


async def policies(services: Services, data: FileRef, body: c.PoliciesRequest, progress: Progress) -> Output:
    from entrypoints.presenters import commands as mapping

    spec = mapping.policy_spec(body)
    result = await _analysed(services, services.analyze_policies, spec, data, progress)
    return Output(result=result, out=result, summary=policy_summary(result))


async def content(services: Services, data: FileRef, body: c.ContentRequest, progress: Progress) -> Output:
    from entrypoints.presenters import commands as mapping

    spec = mapping.content_spec(body)
    result = await _analysed(services, services.analyze_content, spec, data, progress)
    return Output(result=result, out=result, summary=content_summary(result, body.target))
