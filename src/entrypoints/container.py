"""The composition root: the only module that names concrete adapters."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any

from dependency_injector import containers, providers
from prometheus_client import CollectorRegistry

from adapters.compute.cpu_budget import PoolShape, cpu_budget, pool_shape
from adapters.compute.inline_runner import InlineRunner
from adapters.compute.memory_budget import memory_limit_bytes
from adapters.compute.process_pool import ProcessPoolRunner
from adapters.compute.shared_frames import SharedFrames
from adapters.content.analyzer import SklearnContentAnalyzer
from adapters.dask.cluster import DaskCluster
from adapters.dask.segmenter import DaskSegmenter
from adapters.dask.table_dataset import DaskTableSource
from adapters.dask.trainer import DaskGbmTrainer
from adapters.drift.analyzer import PolarsDriftAnalyzer
from adapters.files.dataset_source import FileDatasetSource
from adapters.gbm.trainer import LightGbmTrainer
from adapters.inline.dataset_source import InlineDatasetSource
from adapters.metrics.prometheus_jobs import PrometheusJobObserver
from adapters.policies.analyzer import PolarsPolicyAnalyzer
from adapters.postgres.table_source import SqlDatasetSource
from adapters.routing_dataset_source import RoutingDatasetSource
from adapters.routing_segmenter import RoutingSegmenter
from adapters.routing_trainer import RoutingGbmTrainer
from adapters.segmentation.segmenter import SklearnSegmenter
from adapters.system_clock import SystemClock
from application.analyze_content import AnalyzeContent
from application.analyze_drift import AnalyzeDrift
from application.analyze_policies import AnalyzePolicies
from application.cancel_job import CancelJob
from application.check_health import CheckHealth
from application.get_job import GetJob
from application.job_executor import JobExecutor
from application.ports import (
    ComputeCluster,
    ComputeRunner,
    DatasetSource,
    JobInput,
    JobScheduler,
    JobStore,
)
from application.segment_customers import SegmentCustomers
from application.train_gbm import TrainGbm
from domain.budget import ResourceBudget, task_budget
from domain.errors import InternalFailure
from domain.jobs import Job
from entrypoints.job_engine import job_store as job_store_for
from entrypoints.job_engine import started_executor, started_job_store
from entrypoints.presenters.jobs import JobResultPresenter
from entrypoints.settings import Settings

log = logging.getLogger(__name__)

# What the compute tasks run: imported by each worker process as it starts, not by the first task.
COMPUTE_MODULES = (
    "adapters.gbm.trainer",
    "adapters.segmentation.segmenter",
    "adapters.policies.analyzer",
    "adapters.content.analyzer",
    "adapters.drift.analyzer",
    "pyarrow.ipc",  # maps the task's frames (adapters/compute/shared_frames.py)
)
# With a Dask scheduler, the compute processes are its clients: dask, distributed and lightgbm.dask
# take seconds to import, paid at start rather than by the first large table.
DASK_COMPUTE_MODULES = ("adapters.dask.trainer", "adapters.dask.segmenter", "distributed", "lightgbm.dask")


def _shape(settings: Settings) -> PoolShape:
    return pool_shape(cpu_budget(override=settings.cpu_limit), settings.workers, settings.threads_per_task)


def _budget(settings: Settings, shape: PoolShape) -> ResourceBudget:
    limit = memory_limit_bytes(settings.memory_limit_mb)
    return task_budget(limit, shape.workers, int(settings.max_model_mb * (1 << 20)))


async def _runner(
    settings: Settings, shape: PoolShape, budget: ResourceBudget
) -> AsyncIterator[ComputeRunner]:
    if settings.compute == "inline":
        yield InlineRunner(queue_limit=settings.queue_limit)
        return
    runner = ProcessPoolRunner(
        workers=shape.workers,
        threads_per_task=shape.threads_per_task,
        queue_limit=settings.queue_limit,
        preload=COMPUTE_MODULES + (DASK_COMPUTE_MODULES if settings.dask_scheduler else ()),
        frames=SharedFrames(settings.shm_dir),
        memory_limit_bytes=budget.process_bytes,
    )
    await runner.start()
    try:
        yield runner
    finally:
        await runner.close()


def _health_timeout(settings: Settings) -> float:
    # The store's own deadline answers first, with its reason; this one is the backstop.
    return settings.store_timeout_seconds + 0.5


def _analysis_timeout(settings: Settings, job_type: str) -> float:
    """The limit of one analysis run outside the job engine (the job engine applies the same)."""
    per_type = {str(name): seconds for name, seconds in settings.job_timeouts.items()}
    return per_type.get(job_type, settings.job_timeout_seconds)


@dataclass(frozen=True)
class _Datasets:
    """The data sources: `local` for the analyses, `clustered` for training and segmentation, which
    send large tables to the Dask cluster when one is configured (adapters/dask/table_dataset.py)."""

    local: DatasetSource[Any]
    clustered: DatasetSource[Any]


def _cluster(settings: Settings) -> DaskCluster | None:
    return DaskCluster(settings.dask_scheduler) if settings.dask_scheduler else None


def _trainer(settings: Settings, shape: PoolShape) -> RoutingGbmTrainer:
    local = LightGbmTrainer(num_threads=shape.threads_per_task)
    elsewhere = (
        DaskGbmTrainer(
            settings.dask_scheduler, settings.database_url, listen_port=settings.dask_lightgbm_port
        )
        if settings.dask_scheduler
        else None
    )
    return RoutingGbmTrainer(local, elsewhere)


def _segmenter(settings: Settings) -> RoutingSegmenter:
    elsewhere = (
        DaskSegmenter(settings.dask_scheduler, settings.database_url) if settings.dask_scheduler else None
    )
    return RoutingSegmenter(SklearnSegmenter(), elsewhere)


async def _started_datasets(
    settings: Settings, read_files: bool, cluster: ComputeCluster | None
) -> AsyncIterator[_Datasets]:
    table = (
        SqlDatasetSource(
            settings.database_url,
            allowed_schemas=settings.allowed_schemas,
            table_pattern=settings.table_pattern,
            # The job store's table holds every tenant's results: never readable, whatever its name.
            hidden_tables=(settings.job_store_table.rpartition(".")[2],),
            require_tenant_filter=settings.require_tenant_filter,
            statement_timeout_ms=int(settings.statement_timeout_seconds * 1000),
        )
        if settings.database_url
        else None
    )
    try:
        files = FileDatasetSource() if read_files else None
        local = RoutingDatasetSource(inline=InlineDatasetSource(), table=table, files=files)
        clustered: DatasetSource[Any] = local
        if isinstance(cluster, DaskCluster) and table is not None:
            clustered = DaskTableSource(
                local, table, cluster, min_rows=settings.dask_min_rows, max_rows=settings.dask_max_rows
            )
        yield _Datasets(local, clustered)
    finally:
        if table is not None:
            await table.close()


class Container(containers.DeclarativeContainer):
    settings = providers.Singleton(Settings)
    clock = providers.Singleton(SystemClock)
    shape = providers.Singleton(_shape, settings)
    budget = providers.Singleton(_budget, settings, shape)
    runner = providers.Resource(_runner, settings, shape, budget)
    job_store = providers.Resource(started_job_store, providers.Singleton(job_store_for, settings, clock))
    # Only the offline CLI reads files (offline_container); the service never reads its own disk.
    read_files = providers.Object(False)
    cluster = providers.Singleton(_cluster, settings)
    data_sources = providers.Resource(_started_datasets, settings, read_files, cluster)
    datasets = data_sources.provided.local
    clustered_datasets = data_sources.provided.clustered
    result_presenter = providers.Singleton(JobResultPresenter)
    # One per container, so that each app (tests build many) has its own /metrics.
    metrics_registry = providers.Singleton(CollectorRegistry)
    job_observer = providers.Singleton(PrometheusJobObserver, metrics_registry)
    executor = providers.Resource(
        started_executor, job_store, runner, clock, settings, shape, result_presenter, job_observer
    )
    # The executor as the routes see it (Services.jobs): the queue's room, checked before a body is read.
    jobs = executor

    trainer = providers.Singleton(_trainer, settings, shape)
    segmenter = providers.Singleton(_segmenter, settings)
    policy_analyzer = providers.Singleton(PolarsPolicyAnalyzer)
    content_analyzer = providers.Singleton(SklearnContentAnalyzer)
    drift_analyzer = providers.Singleton(PolarsDriftAnalyzer)

    max_rows = settings.provided.max_rows
    train_gbm = providers.Singleton(
        TrainGbm,
        clustered_datasets,
        runner,
        trainer,
        max_rows,
        settings.provided.train_timeout_seconds,
        clock,
        budget=budget,
        jobs=executor,
        queue_wait_seconds=settings.provided.train_queue_wait_seconds,
    )
    segment_customers = providers.Singleton(
        SegmentCustomers,
        clustered_datasets,
        executor,
        runner,
        segmenter,
        max_rows,
        providers.Callable(_analysis_timeout, settings, SegmentCustomers.job_type),
        budget=budget,
    )
    analyze_policies = providers.Singleton(
        AnalyzePolicies,
        datasets,
        executor,
        runner,
        policy_analyzer,
        max_rows,
        providers.Callable(_analysis_timeout, settings, AnalyzePolicies.job_type),
        budget=budget,
    )
    analyze_content = providers.Singleton(
        AnalyzeContent,
        datasets,
        executor,
        runner,
        content_analyzer,
        max_rows,
        providers.Callable(_analysis_timeout, settings, AnalyzeContent.job_type),
        budget=budget,
    )
    analyze_drift = providers.Singleton(
        AnalyzeDrift,
        datasets,
        executor,
        runner,
        drift_analyzer,
        max_rows,
        providers.Callable(_analysis_timeout, settings, AnalyzeDrift.job_type),
        budget=budget,
    )
    get_job = providers.Singleton(GetJob, job_store)
    cancel_job = providers.Singleton(CancelJob, job_store, executor, clock)
    check_health = providers.Singleton(
        CheckHealth,
        job_store,
        datasets,
        runner,
        uses_database=providers.Callable(bool, settings.provided.database_url),
        timeout_seconds=providers.Callable(_health_timeout, settings),
        cluster=cluster,
    )


@dataclass(frozen=True)
class Services:
    """What the HTTP layer calls, resolved once the container's resources have started."""

    settings: Settings
    runner: ComputeRunner
    job_store: JobStore
    datasets: DatasetSource[Any]
    jobs: JobScheduler
    train_gbm: TrainGbm
    segment_customers: SegmentCustomers
    analyze_policies: AnalyzePolicies
    analyze_content: AnalyzeContent
    analyze_drift: AnalyzeDrift
    get_job: GetJob
    cancel_job: CancelJob
    check_health: CheckHealth


async def _resolved(provider: Any) -> Any:
    value = provider()
    return await value if inspect.isawaitable(value) else value


async def resolve_services(container: Container) -> Services:
    names = [f.name for f in fields(Services)]
    values = [await _resolved(getattr(container, name)) for name in names]
    services = Services(**dict(zip(names, values, strict=True)))
    executor: JobExecutor = await _resolved(container.executor)
    for handler in (
        services.segment_customers,
        services.analyze_policies,
        services.analyze_content,
        services.analyze_drift,
        services.train_gbm,
    ):
        executor.register(handler)
    await executor.start()
    return services


class _NoJobs(JobScheduler):
    """The offline CLI's scheduler: it runs each analysis at once (SubmitAnalysis.run), so it starts
    no job store, executor, leases or reaper."""

    async def submit(
        self,
        job_type: str,
        job_input: JobInput,
        *,
        tenant_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        raise InternalFailure(f"the offline CLI runs the {job_type} analysis directly, not as a job")

    async def check_room(self) -> None:
        return None

    def cancelled(self, job: Job) -> None:
        return None


@dataclass(frozen=True)
class OfflineServices:
    """What the offline CLI calls. Resolving them starts only the compute runner and the data
    sources; the job engine is never started."""

    settings: Settings
    train_gbm: TrainGbm
    segment_customers: SegmentCustomers
    analyze_policies: AnalyzePolicies
    analyze_content: AnalyzeContent
    analyze_drift: AnalyzeDrift
    result_presenter: JobResultPresenter


async def resolve_offline_services(container: Container) -> OfflineServices:
    names = [f.name for f in fields(OfflineServices)]
    values = [await _resolved(getattr(container, name)) for name in names]
    return OfflineServices(**dict(zip(names, values, strict=True)))


def offline_container(settings: Settings) -> Container:
    """The container of the offline CLI: the service's, plus a file reader behind `FileRef`, and no
    job engine. Resolve it with `resolve_offline_services`, not `init_resources` (which would start
    every resource, the job store included)."""
    container = Container()
    container.settings.override(settings)
    container.read_files.override(True)
    container.executor.override(providers.Singleton(_NoJobs))
    return container
