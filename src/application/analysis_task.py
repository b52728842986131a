"""What the analysis use cases share: load and check the data first (so a bad request is refused
before any work is queued), then run the analysis, either as a job of the job engine (the
service: any replica may run it, from the input stored with the job) or at once through the
compute runner (the offline CLI). Either way the result carries the caller's identifiers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from application.ports import ComputeRunner, DatasetSource, JobHandler, JobInput, JobScheduler, PreparedTask
from domain.budget import ResourceBudget, ResourceEstimate
from domain.data import Dataset, DataSpec, TableRef, require_rows
from domain.jobs import EchoedResult, Job, RequestEcho
from domain.progress import ProgressReporter

S = TypeVar("S")
Analysis = Callable[[Dataset[Any], S, ProgressReporter], object]


def run_analysis(
    analyze: Analysis[Any],
    dataset: Dataset[Any],
    spec: Any,
    echo: RequestEcho,
    *,
    progress: ProgressReporter,
) -> EchoedResult[object]:
    """Runs in a compute worker: `analyze` is a picklable adapter's bound method."""
    return EchoedResult(analyze(dataset, spec, progress), echo)


class SubmitAnalysis(JobHandler, Generic[S]):
    job_type: ClassVar[str]
    # Checks that cost more than a glance at the schema (hashing a model in the request) run in a
    # thread, so the event loop keeps serving meanwhile.
    validate_in_thread: ClassVar[bool] = False

    def __init__(
        self,
        datasets: DatasetSource[Any],
        jobs: JobScheduler,
        runner: ComputeRunner,
        analyze: Analysis[S],
        max_rows: int,
        timeout_seconds: float,
        budget: ResourceBudget | None = None,
    ) -> None:
        self._budget = budget or ResourceBudget()
        self._datasets = datasets
        self._jobs = jobs
        self._runner = runner
        self._analyze = analyze
        self._max_rows = max_rows
        self._timeout = timeout_seconds

    def validate(self, spec: S, dataset: Dataset[Any]) -> None:
        """Raise ValidationFailed or InsufficientData for what the request and schema already show."""
        raise NotImplementedError

    def estimate(self, spec: S, dataset: Dataset[Any]) -> ResourceEstimate:
        """What the analysis would cost, from the spec and the data's shape (domain/budget.py)."""
        raise NotImplementedError

    async def load(self, data: DataSpec, spec: S) -> Dataset[Any]:
        """The data, refused here for what the request and schema already show, before any work."""
        dataset = await self._datasets.load(data, max_rows=self._max_rows)
        require_rows(dataset)
        if self.validate_in_thread:
            await asyncio.to_thread(self.validate, spec, dataset)
        else:
            self.validate(spec, dataset)
        if not dataset.computed_elsewhere:  # a cluster's rows are not this replica's memory
            self._budget.check(self.estimate(spec, dataset))
        return dataset

    async def submit(
        self, data: DataSpec, spec: S, echo: RequestEcho, *, idempotency_key: str | None = None
    ) -> Job:
        dataset = await self.load(data, spec)
        # A table is read again by the replica that runs the job; other data travels with it.
        job_input = (
            JobInput(spec, echo, data=data) if isinstance(data, TableRef) else JobInput(spec, echo, dataset)
        )
        return await self._jobs.submit(
            self.job_type, job_input, tenant_id=echo.tenant_id, idempotency_key=idempotency_key
        )

    async def prepare(self, job_input: JobInput) -> PreparedTask:
        spec: S = job_input.spec
        dataset = job_input.dataset
        if dataset is None:
            assert job_input.data is not None
            dataset = await self.load(job_input.data, spec)
        return PreparedTask(run_analysis, (self._analyze, dataset, spec, job_input.echo))

    async def run(
        self,
        dataset: Dataset[Any],
        spec: S,
        echo: RequestEcho,
        *,
        on_progress: Callable[[float, str], None] | None = None,
    ) -> EchoedResult[object]:
        """Analyse a dataset that `load` returned now, in the compute runner: no job record, lease or
        polling, for a caller that waits for the result anyway (the offline CLI)."""
        return await self._runner.run(
            run_analysis,
            self._analyze,
            dataset,
            spec,
            echo,
            on_progress=on_progress,
            timeout=self._timeout,
        )
