"""How each offline command runs: its request mapped to the spec (the HTTP routes' mapping), the
use case run at once in the compute runner, and the wire document the service would return.

The request mapping is imported in this module only."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domain.errors import InternalFailure, WorkerError
from entrypoints.cli.progress import Progress, showing_progress
from entrypoints.cli.summaries import content_summary, policy_summary, segmentation_summary, training_summary

if TYPE_CHECKING:
    from application.analysis_task import SubmitAnalysis
    from domain.data import DataSpec, FileRef
    from entrypoints import contract as c
    from entrypoints.container import OfflineServices
    from entrypoints.presenters.jobs import JobResultPresenter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    result: Mapping[str, Any]  # the full JSON result, as the API returns it
    out: Mapping[str, Any]  # what --out gets
    summary: str


async def analysed(
    use_case: SubmitAnalysis[Any],
    spec: Any,
    data: DataSpec,
    presenter: JobResultPresenter,
    progress: Progress,
) -> dict[str, Any]:
    """The analysis run now, its result as /status would return it. A refused request reads as the
    service's answer to the submission (with details); a failed computation as /status reports the
    failed job (code and message)."""
    from domain.jobs import RequestEcho

    dataset = await use_case.load(data, spec)
    progress.update(0.0)
    try:
        work = use_case.run(dataset, spec, RequestEcho(), on_progress=progress.update)
        document = presenter.present(await showing_progress(work, progress))
    except WorkerError as error:
        raise _as_failed_job(presenter, use_case.job_type, error) from None
    except Exception as error:
        log.exception("the %s analysis failed unexpectedly", use_case.job_type)
        raise _as_failed_job(presenter, use_case.job_type, InternalFailure(str(error))) from None
    return dict(document)


def _as_failed_job(presenter: JobResultPresenter, job_type: str, error: WorkerError) -> WorkerError:
    from application.errors import error_from_code
    from application.job_executor import INTERNAL
    from domain.jobs import JobFailure

    # As the job engine records a failure; an internal failure's own message stays in the log.
    failure = JobFailure(error.code, error.message)
    shown = INTERNAL if failure.code == INTERNAL.code else presenter.present_failure(job_type, failure)
    return error_from_code(shown.code, shown.message)


async def train_gbm(services: OfflineServices, data: FileRef, body: Any, progress: Progress) -> Output:
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


async def segment(
    services: OfflineServices, data: FileRef, body: c.SegmentsRequest, progress: Progress
) -> Output:
    from entrypoints.presenters import commands as mapping

    spec = mapping.segmentation_spec(body)
    result = await analysed(services.segment_customers, spec, data, services.result_presenter, progress)
    return Output(result=result, out=result, summary=segmentation_summary(result))


async def policies(
    services: OfflineServices, data: FileRef, body: c.PoliciesRequest, progress: Progress
) -> Output:
    from entrypoints.presenters import commands as mapping

    spec = mapping.policy_spec(body)
    result = await analysed(services.analyze_policies, spec, data, services.result_presenter, progress)
    return Output(result=result, out=result, summary=policy_summary(result))


async def content(
    services: OfflineServices, data: FileRef, body: c.ContentRequest, progress: Progress
) -> Output:
    from entrypoints.presenters import commands as mapping

    spec = mapping.content_spec(body)
    result = await analysed(services.analyze_content, spec, data, services.result_presenter, progress)
    return Output(result=result, out=result, summary=content_summary(result, body.target))
