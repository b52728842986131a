"""How each offline command runs: its request mapped to the spec by the presenters the HTTP routes
use, the use case run at once in the compute runner, and the wire document the service would return
(errors too name the request's fields as the service's answers do)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domain.errors import InternalFailure, WorkerError
from domain.jobs import RequestEcho
from entrypoints.cli.progress import Progress, showing_progress
from entrypoints.cli.summaries import (
    content_summary,
    drift_summary,
    policy_summary,
    segmentation_summary,
    training_summary,
)

if TYPE_CHECKING:
    from application.analysis_task import SubmitAnalysis
    from domain.data import DataSpec, FileRef
    from entrypoints import contract as c
    from entrypoints.container import OfflineServices
    from entrypoints.presenters.jobs import JobResultPresenter
    from entrypoints.presenters.wire import WireNames

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
    names: WireNames,
    echo: RequestEcho | None = None,
) -> dict[str, Any]:
    """The analysis run now, its result as /status would return it (with the request's `schemaId`
    and `tenantId`). A refused request reads as the service's answer to the submission (with
    details); a failed computation as /status reports the failed job (code and message)."""
    try:
        dataset = await use_case.load(data, spec)
    except WorkerError as error:
        raise names.error(error) from None
    progress.update(0.0)
    try:

        def report(fraction: float, message: str) -> None:
            progress.update(fraction, names.message(message))

        work = use_case.run(dataset, spec, echo or RequestEcho(), on_progress=report)
        document = presenter.present(await showing_progress(work, progress))
    except WorkerError as error:
        raise _as_failed_job(presenter, use_case.job_type, error) from None
    except Exception as error:
        log.exception("the %s analysis failed unexpectedly", use_case.job_type)
        raise _as_failed_job(presenter, use_case.job_type, InternalFailure(str(error))) from None
    return dict(document)


def _as_failed_job(presenter: JobResultPresenter, job_type: str, error: WorkerError) -> WorkerError:
    from application.errors import error_from_code
    from application.job_upkeep import INTERNAL
    from domain.jobs import JobFailure

    # As the job engine records a failure; an internal failure's own message stays in the log.
    failure = JobFailure(error.code, error.message)
    shown = INTERNAL if failure.code == INTERNAL.code else presenter.present_failure(job_type, failure)
    return error_from_code(shown.code, shown.message)


def _echo(
    body: c.SegmentsRequest | c.PoliciesRequest | c.ContentRequest | c.DriftAnalysisRequest,
) -> RequestEcho:
    return RequestEcho(schema_id=body.schemaId, tenant_id=body.tenantId)


async def train_gbm(services: OfflineServices, data: FileRef, body: Any, progress: Progress) -> Output:
    from application.train_gbm import TrainGbmCommand
    from entrypoints.presenters.gbm import GBM_NAMES, training_response, training_spec

    started = time.perf_counter()
    command = TrainGbmCommand(data=data, spec=training_spec(body))
    prepared = time.perf_counter()
    progress.update(None, "training")  # LightGBM reports no fraction
    try:
        outcome = await showing_progress(services.train_gbm.execute(command), progress)
    except WorkerError as error:
        raise GBM_NAMES.error(error) from None
    total_ms = round((time.perf_counter() - started) * 1000.0, 3)
    # Nothing is uploaded: the file is read by the data source, whose load is the decode stage.
    decode_ms = round((prepared - started) * 1000.0, 3)
    response = training_response(outcome, upload_ms=0.0, decode_ms=decode_ms, total_ms=total_ms)
    return Output(result=response, out=response["modelState"], summary=training_summary(response))


async def segment(
    services: OfflineServices, data: FileRef, body: c.SegmentsRequest, progress: Progress
) -> Output:
    from entrypoints.presenters.segmentation import SEGMENTATION_NAMES, segmentation_spec

    spec = segmentation_spec(body)
    presenter = services.result_presenter
    result = await analysed(
        services.segment_customers, spec, data, presenter, progress, SEGMENTATION_NAMES, _echo(body)
    )
    return Output(result=result, out=result, summary=segmentation_summary(result))


async def policies(
    services: OfflineServices, data: FileRef, body: c.PoliciesRequest, progress: Progress
) -> Output:
    from entrypoints.presenters.policies import POLICY_NAMES, policy_spec

    spec = policy_spec(body)
    presenter = services.result_presenter
    result = await analysed(
        services.analyze_policies, spec, data, presenter, progress, POLICY_NAMES, _echo(body)
    )
    return Output(result=result, out=result, summary=policy_summary(result))


async def content(
    services: OfflineServices, data: FileRef, body: c.ContentRequest, progress: Progress
) -> Output:
    from entrypoints.presenters.content import CONTENT_NAMES, content_spec

    spec = content_spec(body)
    presenter = services.result_presenter
    result = await analysed(
        services.analyze_content, spec, data, presenter, progress, CONTENT_NAMES, _echo(body)
    )
    return Output(result=result, out=result, summary=content_summary(result, body.target))


async def drift(
    services: OfflineServices, data: FileRef, body: c.DriftAnalysisRequest, progress: Progress
) -> Output:
    from entrypoints.presenters.drift import DRIFT_NAMES, drift_spec

    spec = drift_spec(body)
    presenter = services.result_presenter
    result = await analysed(services.analyze_drift, spec, data, presenter, progress, DRIFT_NAMES, _echo(body))
    return Output(result=result, out=result, summary=drift_summary(result))
