"""Thin routes: contract model in, use case call, contract shape out. Errors are mapped once, in
errors.py; nothing here catches."""

from __future__ import annotations

import hmac
import time
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from starlette.responses import Response

from application.analysis_task import SubmitAnalysis
from application.train_gbm import TrainGbm, TrainGbmCommand
from domain.data import DataSpec
from domain.jobs import RequestEcho
from entrypoints import contract as c
from entrypoints.container import Services
from entrypoints.http.bodies import read_request
from entrypoints.http.disconnect import unless_disconnected
from entrypoints.http.errors import Unauthorized
from entrypoints.http.job_requests import accepted, async_in_query, idempotency_key
from entrypoints.http.responses import JsonResponse
from entrypoints.presenters import gbm, policies
from entrypoints.presenters.content import CONTENT_NAMES, content_spec
from entrypoints.presenters.drift import DRIFT_NAMES, drift_spec
from entrypoints.presenters.health import health_view
from entrypoints.presenters.jobs import job_view
from entrypoints.presenters.segmentation import SEGMENTATION_NAMES, segmentation_spec


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _before_the_body(request: Request) -> str | None:
    """What a job's submission refuses before its body is read: a bad Idempotency-Key, and a full
    queue (503 BUSY), so that a full queue costs no upload of what it would refuse anyway."""
    key = idempotency_key(request)
    await _services(request).jobs.check_room()
    return key


async def require_api_key(request: Request) -> None:
    expected = _services(request).settings.api_key
    if expected is None:  # unset: open, as documented (set but empty is refused at start)
        return
    # Compared as bytes: Starlette decodes header bytes as latin-1, so encoding back to latin-1
    # gives what the client sent, and a non-ASCII key travels as its UTF-8 bytes.
    given = request.headers.get("x-api-key", "").encode("latin-1")
    if not given or not hmac.compare_digest(given, expected.encode("utf-8")):
        raise Unauthorized("missing or invalid X-Api-Key")


async def get_health(request: Request) -> Response:
    services = _services(request)
    settings = services.settings
    report = await services.check_health.execute()
    body = health_view(
        report,
        version=request.app.version,
        job_store=settings.job_store,
        data_source="postgres" if settings.database_url else "inline",
    )
    return JsonResponse(body, status_code=200 if report.healthy else 503)


async def get_liveness(request: Request) -> Response:
    # No dependency is checked: a store outage makes the replica unready (/health), never restarted.
    return JsonResponse({"status": "ok"})


async def get_metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def train_gbm(request: Request) -> Response:
    started = time.perf_counter()
    services = _services(request)
    # A synchronous training keeps nothing to answer again, so its key is checked but not used.
    key = idempotency_key(request)
    queue_checked = async_in_query(request)
    if queue_checked:
        await services.jobs.check_room()
    request.state.wire_names = gbm.GBM_NAMES
    parsed = await read_request(request, c.TrainGbmRequest)
    command = TrainGbmCommand(
        data=parsed.data,
        spec=gbm.training_spec(parsed.fields),
        received_at=getattr(request.state, "received_at", None),
    )
    if parsed.fields.async_:
        if not queue_checked:  # a JSON body: `async` was known only once it was read
            await services.jobs.check_room()
        job = await services.train_gbm.submit(command, RequestEcho(), idempotency_key=key)
        return accepted(job, TrainGbm.job_type)
    metrics = request.app.state.metrics
    with metrics.training():
        outcome = await unless_disconnected(request, services.train_gbm.execute(command))
    structlog.contextvars.bind_contextvars(threads=outcome.threads)  # on the request's log line
    metrics.training_rows.observe(outcome.metrics.training_samples + outcome.metrics.validation_samples)
    total_ms = round((time.perf_counter() - started) * 1000.0, 3)
    return JsonResponse(
        gbm.training_response(
            outcome, upload_ms=parsed.upload_ms, decode_ms=parsed.decode_ms, total_ms=total_ms
        )
    )


async def _submit(
    use_case: SubmitAnalysis[Any], data: DataSpec, spec: Any, body: Any, key: str | None
) -> Response:
    echo = RequestEcho(schema_id=body.schemaId, tenant_id=body.tenantId)
    job = await use_case.submit(data, spec, echo, idempotency_key=key)
    return accepted(job, use_case.job_type)


async def analyze_segments(request: Request) -> Response:
    key = await _before_the_body(request)
    request.state.wire_names = SEGMENTATION_NAMES
    parsed = await read_request(request, c.SegmentsRequest)
    body = parsed.fields
    return await _submit(
        _services(request).segment_customers, parsed.data, segmentation_spec(body), body, key
    )


async def analyze_policies(request: Request) -> Response:
    key = await _before_the_body(request)
    request.state.wire_names = policies.POLICY_NAMES
    parsed = await read_request(request, c.PoliciesRequest)
    body = parsed.fields
    return await _submit(
        _services(request).analyze_policies, parsed.data, policies.policy_spec(body), body, key
    )


async def analyze_content(request: Request) -> Response:
    key = await _before_the_body(request)
    request.state.wire_names = CONTENT_NAMES
    parsed = await read_request(request, c.ContentRequest)
    body = parsed.fields
    return await _submit(_services(request).analyze_content, parsed.data, content_spec(body), body, key)


async def analyze_drift(request: Request) -> Response:
    key = await _before_the_body(request)
    request.state.wire_names = DRIFT_NAMES
    # JSON only: the model is part of the body, so there is no binary form of this request.
    parsed = await read_request(request, c.DriftAnalysisRequest, binary=False)
    body = parsed.fields
    return await _submit(_services(request).analyze_drift, parsed.data, drift_spec(body), body, key)


async def get_job_status(request: Request, job_id: str) -> Response:
    return JsonResponse(job_view(await _services(request).get_job.execute(job_id)))


async def cancel_job(request: Request, job_id: str) -> Response:
    return JsonResponse(job_view(await _services(request).cancel_job.execute(job_id)))


# (path, method, operationId, handler, needs the API key): the same table as openapi.yaml's paths,
# which tests/contract/test_openapi_parity.py holds them to.
ROUTES = (
    ("/health", "GET", "getHealth", get_health, False),
    ("/health/live", "GET", "getLiveness", get_liveness, False),
    ("/metrics", "GET", "getMetrics", get_metrics, False),
    ("/train/gbm", "POST", "trainGbm", train_gbm, True),
    ("/analyze/segments", "POST", "analyzeSegments", analyze_segments, True),
    ("/analyze/policies", "POST", "analyzePolicies", analyze_policies, True),
    ("/analyze/content", "POST", "analyzeContent", analyze_content, True),
    ("/analyze/drift", "POST", "analyzeDrift", analyze_drift, True),
    ("/status/{job_id}", "GET", "getJobStatus", get_job_status, True),
    ("/status/{job_id}", "DELETE", "cancelJob", cancel_job, True),
)


def register_routes(app: FastAPI) -> None:
    for path, method, operation_id, handler, protected in ROUTES:
        app.add_api_route(
            path,
            handler,
            methods=[method],
            operation_id=operation_id,
            dependencies=[Depends(require_api_key)] if protected else None,
        )
