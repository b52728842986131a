from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from application.errors import TaskTimedOut
from application.ports import Clock, ComputeRunner, DatasetSource, GbmTrainer
from domain.budget import ResourceBudget, ResourceEstimate, estimate_gbm
from domain.data import DataSpec, require_rows
from domain.gbm.training import (
    CategoricalEncoding,
    FeaturePlan,
    GbmTrainingOutcome,
    GbmTrainingSpec,
    check_bagging,
    plan_features,
    smallest_training_rows,
)


@dataclass(frozen=True)
class TrainGbmCommand:
    data: DataSpec
    spec: GbmTrainingSpec
    # When the request arrived (the use case's clock): the deadline counts from here, so an upload,
    # a table read or a wait are inside it, as they are inside the caller's own request timeout.
    received_at: float | None = None


class TrainGbm:
    """Synchronous training: the caller waits for the model, but the event loop never does."""

    def __init__(
        self,
        datasets: DatasetSource[Any],
        runner: ComputeRunner,
        trainer: GbmTrainer[Any],
        max_rows: int,
        timeout_seconds: float,
        clock: Clock,
        budget: ResourceBudget | None = None,
    ) -> None:
        self._budget = budget or ResourceBudget()
        self._datasets = datasets
        self._runner = runner
        self._trainer = trainer
        self._max_rows = max_rows
        self._timeout = timeout_seconds
        self._clock = clock

    async def execute(self, command: TrainGbmCommand) -> GbmTrainingOutcome:
        # Take a compute place before reading the data: a full pool answers BUSY at once.
        reservation = self._runner.reserve()
        try:
            loading = self._clock.now()
            dataset = await self._datasets.load(command.data, max_rows=self._max_rows)
            load_ms = round((self._clock.now() - loading) * 1000.0, 3)
            require_rows(dataset)
            # Here, so that name-level mistakes never reach a worker; the worker trains on this plan.
            plan = plan_features(command.spec, dataset.schema)
            # A bag LightGBM would draw empty fails inside it: refused here, naming the parameter
            # (for the fold models too, which train on fewer rows).
            spec = command.spec
            check_bagging(spec.params, smallest_training_rows(dataset.row_count, spec))
            # What the training would cost, refused here: a bomb never reaches a worker. The fold
            # models (`cv_folds`, a cross-fitted calibrator) train one at a time, after the returned
            # model is freed, on fewer rows: the estimate of one training bounds their memory too.
            # Their time is the training deadline's to bound.
            categories = dataset.distinct_counts(plan.categorical)
            self._budget.check(gbm_estimate(command.spec, plan, dataset.row_count, categories))
            timeout = self._remaining(command.received_at)
        except BaseException:
            reservation.release()
            raise
        outcome = await self._runner.run(
            self._trainer.train,
            dataset,
            command.spec,
            plan,
            reservation=reservation,
            timeout=timeout,
        )
        # The worker times its own stages; reading or decoding the data happened here, before it.
        return replace(outcome, durations_ms=replace(outcome.durations_ms, load=load_ms))

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
