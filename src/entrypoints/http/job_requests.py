"""What a job's submission reads besides its body: its Idempotency-Key header and, for /train/gbm,
whether it asks for a job at all; and the 202 that answers it."""

from __future__ import annotations

import re

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from domain.errors import ValidationFailed, field_error
from domain.jobs import Job
from entrypoints.http.bodies import FIELDS_PARAMETER
from entrypoints.http.errors import BadHeader
from entrypoints.http.responses import JsonResponse

IDEMPOTENCY_KEY = "Idempotency-Key"
# Printable ASCII, at most 200 characters, no space at either end (HTTP strips those, so a key
# that had them would not be the key the server sees).
_IDEMPOTENCY_KEY = re.compile(r"[!-~](?:[ -~]{0,198}[!-~])?")


def idempotency_key(request: Request) -> str | None:
    """The request's key, None without one; a malformed one is a 400 naming the header."""
    given = request.headers.getlist(IDEMPOTENCY_KEY)
    if not given:
        return None
    if len(given) > 1:
        raise BadHeader(
            f"send one {IDEMPOTENCY_KEY} header, not {len(given)}",
            [field_error(IDEMPOTENCY_KEY, "given more than once")],
        )
    # Starlette decodes header bytes as latin-1: a byte outside printable ASCII stays outside it.
    if _IDEMPOTENCY_KEY.fullmatch(given[0]) is None:
        raise BadHeader(
            f"{IDEMPOTENCY_KEY} must be 1 to 200 printable ASCII characters",
            [field_error(IDEMPOTENCY_KEY, "not 1 to 200 printable ASCII characters")],
        )
    return given[0]


def accepted(job: Job, job_type: str) -> Response:
    """The 202 of a submission of a `job_type` job, whether the job is new or found under its key."""
    if job.type != job_type:
        # The key of an earlier submission to another operation: answering that job would hand
        # the caller a job of the wrong type as if it were theirs.
        raise ValidationFailed(
            f"this {IDEMPOTENCY_KEY} was used for a {job.type} job; send a new key with this request",
            [field_error(IDEMPOTENCY_KEY, f"already used for a {job.type} job")],
        )
    # A new job is queued; a job found under its key answers with its status as it now stands.
    return JsonResponse(
        {"jobId": job.id, "status": job.status.value},
        status_code=202,
        headers={"Location": f"/status/{job.id}"},
    )


def async_in_query(request: Request) -> bool:
    """Whether `?request=` (the fields of a binary body) asks for an async training, known before
    the body is read. A parameter that is not a JSON object is not judged here: read_request
    refuses it with its reason."""
    text = request.query_params.get(FIELDS_PARAMETER)
    if text is None:
        return False
    try:
        fields = msgspec.json.decode(text)
    except msgspec.MsgspecError:
        return False
    return isinstance(fields, dict) and fields.get("async") is True
