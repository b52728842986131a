"""Settings reach the objects the container builds."""

from __future__ import annotations

from entrypoints.container import Container, resolve_services
from entrypoints.settings import Settings


async def test_per_type_job_timeouts_reach_the_executor(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ML_WORKER_JOB_TIMEOUTS", '{"segmentation": 7.5}')
    container = Container()
    container.settings.override(Settings(compute="inline", job_timeout_seconds=99))
    await container.init_resources()
    try:
        await resolve_services(container)
        executor = await container.executor()
        assert executor._settings.timeout_for("segmentation") == 7.5
        assert executor._settings.timeout_for("content_analysis") == 99
    finally:
        await container.shutdown_resources()
