"""Settings and overrides reach the objects the container builds."""

from __future__ import annotations

from dependency_injector import providers

from entrypoints.container import Container, resolve_services
from support import tasks
from support.app import make_settings
from support.clock import FakeClock
from support.jobs import Engine, task_handlers
from support.presenter import DocumentPresenter


async def test_per_type_job_timeouts_reach_the_executor(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ML_WORKER_JOB_TIMEOUTS", '{"segmentation": 7.5}')
    container = Container()
    container.settings.override(make_settings(job_timeout_seconds=99))
    await container.init_resources()
    try:
        await resolve_services(container)
        executor = await container.executor()
        assert executor._settings.timeout_for("segmentation") == 7.5
        assert executor._settings.timeout_for("content_analysis") == 99
    finally:
        await container.shutdown_resources()


async def test_an_overridden_clock_times_the_executor_the_store_and_cancels() -> None:
    clock = FakeClock()
    container = Container()
    container.settings.override(make_settings())
    container.clock.override(providers.Object(clock))
    container.result_presenter.override(providers.Object(DocumentPresenter()))  # toy tasks' documents
    await container.init_resources()
    try:
        services = await resolve_services(container)
        task_handlers(await container.executor())  # the toy tasks run as any job type
        engine = Engine(
            services.job_store,  # type: ignore[arg-type]
            services.runner,
            clock,
            await container.executor(),
            services.get_job,
            services.cancel_job,
        )
        done = await engine.final((await engine.submit("segmentation", tasks.job_result, 2, 0.0)).id)
        assert done.created_at == done.finished_at == clock.now()
        clock.advance(5)
        pending = await engine.submit("segmentation", tasks.job_result, 3, 0.0)
        cancelled = await services.cancel_job.execute(pending.id)
        assert cancelled.finished_at == clock.now()
        # The store reads the same clock: a finished job is gone once its retention time has passed.
        clock.advance(make_settings().job_result_ttl_seconds + 1)
        assert await services.job_store.get(done.id) is None
    finally:
        await container.shutdown_resources()


async def test_the_shm_dir_setting_is_where_the_pool_writes_frames(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ML_WORKER_SHM_DIR", str(tmp_path))
    container = Container()
    container.settings.override(make_settings(compute="process", workers=1))
    await container.init_resources()
    try:
        runner = (await resolve_services(container)).runner
        assert runner._frames.directories[0] == tmp_path  # type: ignore[attr-defined]
    finally:
        await container.shutdown_resources()
