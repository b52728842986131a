from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from application.errors import TaskTimedOut
from application.ports import (
    Clock,
    ComputeRunner,
    DatasetSource,
    GbmTrainer,
    JobHandler,
    JobInput,
    JobScheduler,
    PreparedTask,
)
from domain.budget import ResourceBudget, ResourceEstimate, estimate_gbm
from domain.data import Dataset, DataSpec, TableRef, require_rows
from domain.errors import InternalFailure
from domain.gbm.training import (
    CategoricalEncoding,
    FeaturePlan,
    GbmTrainingOutcome,
    GbmTrainingSpec,
    check_bagging,
    plan_features,
    smallest_training_rows,
)
from domain.jobs import Job, RequestEcho


@dataclass(frozen=True)
class TrainGbmCommand:
    data: DataSpec
    spec: GbmTrainingSpec
    # When the request arrived (the use case's clock): the deadline counts from here, so an upload,
    # a table read or a wait are inside it, as they are inside the caller's own request timeout.
    received_at: float | None = None


@dataclass(frozen=True)
class _Checked:
    dataset: Dataset[Any]
    plan: FeaturePlan


class TrainGbm(JobHandler):
    """Training, synchronous by default: the caller waits for the model, but the event loop never
    does. A training waits for a free compute slot up to `queue_wait_seconds` before Busy, ahead of
    any queued job (the dispatcher leaves a slot to a waiting training). `submit` queues it as a
    `gbm_training` job instead, for trainings that may outlast a request."""

    job_type = "gbm_training"

    def __init__(
        self,
        datasets: DatasetSource[Any],
        runner: ComputeRunner,
        trainer: GbmTrainer[Any],
        max_rows: int,
        timeout_seconds: float,
        clock: Clock,
        budget: ResourceBudget | None = None,
        *,
        jobs: JobScheduler | None = None,
        queue_wait_seconds: float = 30.0,
    ) -> None:
        self._budget = budget or ResourceBudget()
        self._datasets = datasets
        self._runner = runner
        self._trainer = trainer
        self._max_rows = max_rows
        self._timeout = timeout_seconds
        self._clock = clock
        self._jobs = jobs
        self._queue_wait = queue_wait_seconds

    async def execute(self, command: TrainGbmCommand) -> GbmTrainingOutcome:
        # A place in the line for a slot, taken before the data is read: past the line, BUSY at once.
        reservation = self._runner.reserve()
        try:
            loading = self._clock.now()
            checked = await self._checked(command.data, command.spec)
            load_ms = round((self._clock.now() - loading) * 1000.0, 3)
            timeout = self._remaining(command.received_at)
        except BaseException:
            reservation.release()
            raise
        outcome = await self._runner.run(
            self._trainer.train,
            checked.dataset,
            command.spec,
            checked.plan,
            reservation=reservation,
            timeout=timeout,
            start_within=min(self._queue_wait, timeout),
        )
        # The worker times its own stages; reading or decoding the data happened here, before it.
        return replace(outcome, durations_ms=replace(outcome.durations_ms, load=load_ms))

    async def submit(
        self, command: TrainGbmCommand, echo: RequestEcho, *, idempotency_key: str | None = None
    ) -> Job:
        if self._jobs is None:
            raise InternalFailure("this training runs without a job engine")
        checked = await self._checked(command.data, command.spec)
        job_input = (
            JobInput(command.spec, echo, data=command.data)
            if isinstance(command.data, TableRef)
            else JobInput(command.spec, echo, checked.dataset)
        )
        return await self._jobs.submit(
            self.job_type, job_input, tenant_id=echo.tenant_id, idempotency_key=idempotency_key
        )

    async def prepare(self, job_input: JobInput) -> PreparedTask:
        spec: GbmTrainingSpec = job_input.spec
        if job_input.dataset is not None:
            checked = self._check(job_input.dataset, spec)
        else:
            assert job_input.data is not None
            checked = await self._checked(job_input.data, spec)
        return PreparedTask(self._trainer.train, (checked.dataset, spec, checked.plan))

    async def _checked(self, data: DataSpec, spec: GbmTrainingSpec) -> _Checked:
        dataset = await self._datasets.load(data, max_rows=self._max_rows)
        return self._check(dataset, spec)

    def _check(self, dataset: Dataset[Any], spec: GbmTrainingSpec) -> _Checked:
        require_rows(dataset)
        # Here, so that name-level mistakes never reach a worker; the worker trains on this plan.
        plan = plan_features(spec, dataset.schema)
        # A bag LightGBM would draw empty fails inside it: refused here, naming the parameter
        # (for the fold models too, which train on fewer rows).
        check_bagging(spec.params, smallest_training_rows(dataset.row_count, spec))
        # What the training would cost, refused here: a bomb never reaches a worker. The fold
        # models (`cv_folds`, a cross-fitted calibrator) train one at a time, after the returned
        # model is freed, on fewer rows: the estimate of one training bounds their memory too.
        # Their time is the training deadline's to bound. Rows computed elsewhere (a cluster) are
        # not this replica's memory: their backend bounds them (its own row limit).
        if not dataset.computed_elsewhere:
            categories = dataset.distinct_counts(plan.categorical)
            self._budget.check(gbm_estimate(spec, plan, dataset.row_count, categories))
        return _Checked(dataset, plan)

    def _remaining(self, received_at: float | None) -> float:
        if received_at is None:
            return self._timeout
        remaining = self._timeout - (self._clock.now() - received_at)
        if remaining <= 0:
            raise TaskTimedOut(
                f"the training did not start within {self._timeout:g} s of the request's arrival"
            )
        return remaining


def gbm_estimate(
    spec: GbmTrainingSpec, plan: FeaturePlan, rows: int, categories: Mapping[str, int]
) -> ResourceEstimate:
    """The encoded columns as the trainer makes them (adapters/gbm/encoding.py): one-hot makes one
    two-bin column per kept category (at most `max_categories`, one more for the rest), native one
    column binned by its categories."""
    kept = [
        min(categories.get(name, spec.max_categories), spec.max_categories) + 1 for name in plan.categorical
    ]
    onehot = spec.categorical_encoding is CategoricalEncoding.ONEHOT
    column_bins = [2] * sum(kept) if onehot else kept
    return estimate_gbm(
        rows=rows,
        columns=len(plan.numeric) + len(column_bins),
        column_bins=column_bins,
        max_bin=spec.params.max_bin,
        num_leaves=spec.params.num_leaves,
        num_iterations=spec.params.num_iterations,
        min_data_in_leaf=spec.params.min_data_in_leaf,
    )
