"""A job as the Redis job store writes and reads its hash: one field per attribute, absent = None.

Records of every format read back: one written before the queue (format 1) has no `format`,
`attempts` or `tenant_id` field, and reads as 0 attempts and no tenant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import orjson

from adapters.redis import scripts
from domain.errors import ValidationFailed
from domain.jobs import JOB_FORMAT, Job, JobFailure, JobStatus


def num(value: float) -> str:
    if not math.isfinite(value):
        raise ValidationFailed(f"job times must be finite numbers, not {value!r}")
    # repr is the shortest string that parses back to the same double.
    return repr(float(value))


def ttl_ms(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8")


def _float(raw: bytes | None) -> float | None:
    return None if raw is None else float(raw)


def new_fields(job: Job, encoded_result: bytes | None) -> dict[str, str | bytes]:
    """The hash of a job about to be created, in the current format."""
    values: dict[str, str | bytes] = {
        "id": job.id,
        "type": job.type,
        "status": job.status.value,
        "created_at": num(job.created_at),
        "progress": num(job.progress),
        "message": job.message,
        "attempts": str(int(job.attempts)),
        "format": str(JOB_FORMAT),
    }
    optional: dict[str, float | None] = {
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "lease_expires_at": job.lease_expires_at,
    }
    values.update({name: num(value) for name, value in optional.items() if value is not None})
    if job.owner is not None:
        values["owner"] = job.owner
    if job.tenant_id is not None:
        values["tenant_id"] = job.tenant_id
    if encoded_result is not None:
        values["result"] = encoded_result
    if job.error is not None:
        values["error_code"] = job.error.code
        values["error_message"] = job.error.message
    return values


def job_from(fields: Mapping[str, bytes | None], result: bytes | None) -> Job:
    error_code = _text(fields.get("error_code"))
    attempts = fields.get("attempts")
    return Job(
        id=_text(fields["id"]) or "",
        type=_text(fields["type"]) or "",
        status=JobStatus(_text(fields["status"]) or ""),
        created_at=_float(fields["created_at"]) or 0.0,
        progress=_float(fields.get("progress")) or 0.0,
        message=_text(fields.get("message")) or "",
        started_at=_float(fields.get("started_at")),
        finished_at=_float(fields.get("finished_at")),
        result=None if result is None else orjson.loads(result),
        error=(
            None if error_code is None else JobFailure(error_code, _text(fields.get("error_message")) or "")
        ),
        owner=_text(fields.get("owner")),
        lease_expires_at=_float(fields.get("lease_expires_at")),
        attempts=0 if attempts is None else int(attempts),
        tenant_id=_text(fields.get("tenant_id")),
    )


def snapshot_job(values: Sequence[bytes | None], result: bytes | None = None) -> Job:
    """A job from a script's snapshot (the fields of scripts.FIELDS, in order)."""
    return job_from(dict(zip(scripts.FIELDS, values, strict=True)), result)
