"""Jobs on the wire: a job's record as /status shows it, and its typed result as the JSON document
the job store keeps. Each analysis adds its result presenter and its request's names here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from application.ports import ResultPresenter
from domain.content import ContentAnalysisResult
from domain.drift import DriftAnalysisResult
from domain.errors import WorkerError
from domain.gbm.training import GbmTrainingOutcome
from domain.jobs import EchoedResult, Job, JobFailure, RequestEcho
from domain.policies import PolicyAnalysisResult
from domain.segmentation import SegmentationResult
from entrypoints.presenters.content import CONTENT_NAMES, present_content_analysis
from entrypoints.presenters.drift import DRIFT_NAMES, present_drift_analysis
from entrypoints.presenters.gbm import GBM_NAMES, training_job_result
from entrypoints.presenters.policies import POLICY_NAMES, present_policy_analysis
from entrypoints.presenters.segmentation import SEGMENTATION_NAMES, present_segmentation
from entrypoints.presenters.wire import WireNames, iso_time, json_ready, without_marks

Present = Callable[[Any], Mapping[str, Any]]

# Result type -> its presenter.
RESULT_PRESENTERS: dict[type, Present] = {
    SegmentationResult: present_segmentation,
    ContentAnalysisResult: present_content_analysis,
    PolicyAnalysisResult: present_policy_analysis,
    DriftAnalysisResult: present_drift_analysis,
    GbmTrainingOutcome: training_job_result,
}
# Job type -> how its request spells the spec fields that a failure message names.
JOB_NAMES: dict[str, WireNames] = {
    "segmentation": SEGMENTATION_NAMES,
    "content_analysis": CONTENT_NAMES,
    "policy_analysis": POLICY_NAMES,
    "drift_analysis": DRIFT_NAMES,
    "gbm_training": GBM_NAMES,
}


def present_result(result: object) -> Mapping[str, Any]:
    for result_type, present in RESULT_PRESENTERS.items():
        if isinstance(result, result_type):
            return present(result)
    raise TypeError(f"no presenter for a {type(result).__name__} result")


def echo_fields(echo: RequestEcho) -> dict[str, str]:
    fields = {"schemaId": echo.schema_id, "tenantId": echo.tenant_id}
    return {key: value for key, value in fields.items() if value is not None}


class JobResultPresenter(ResultPresenter):
    def present(self, result: object) -> Mapping[str, Any]:
        document = (
            {**present_result(result.result), **echo_fields(result.echo)}
            if isinstance(result, EchoedResult)
            else present_result(result)
        )
        ready: dict[str, Any] = json_ready(document)
        return ready

    def present_failure(self, job_type: str, failure: JobFailure) -> JobFailure:
        names = JOB_NAMES.get(job_type)
        return failure if names is None else JobFailure(failure.code, names.message(failure.message))


def wire_error(error: WorkerError, names: WireNames | None) -> WorkerError:
    return without_marks(error) if names is None else names.error(error)


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else iso_time(epoch)


def job_view(job: Job) -> dict[str, Any]:
    names = JOB_NAMES.get(job.type)
    message = names.message(job.message) if names is not None and job.message else job.message
    return {
        "jobId": job.id,
        "type": job.type,
        "status": job.status.value,
        "progress": round(job.progress, 4),
        "message": message or None,
        "createdAt": _iso(job.created_at),
        "startedAt": _iso(job.started_at),
        "finishedAt": _iso(job.finished_at),
        "attempts": job.attempts,
        "replica": job.owner,
        "result": dict(job.result) if job.result is not None else None,
        "error": {"code": job.error.code, "message": job.error.message} if job.error else None,
    }
