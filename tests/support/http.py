"""What the HTTP tests check on every answer: the error envelope, the fields it names, and a job
polled until it ends."""

from __future__ import annotations

from typing import Any

import httpx

from support.eventually import eventually


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The envelope's error, after checking its shape, status, code and request id."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["code"] == code and error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list)
    assert error["requestId"] == response.headers["x-request-id"]
    return error


def fields_of(error: dict[str, Any]) -> list[str]:
    return [d.get("field") for d in error["details"]]


async def finished_job(client: httpx.AsyncClient, location: str, timeout: float = 60.0) -> dict[str, Any]:
    async def look() -> dict[str, Any]:
        response = await client.get(location)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        return job

    return await eventually(
        look,
        lambda job: job["status"] in ("completed", "failed", "cancelled"),
        timeout=timeout,
        interval=0.1,
        what=f"{location} finishing",
    )
