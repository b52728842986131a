from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from application.ports import Clock, ComputeRunner, DatasetSource, GbmTrainer
from domain.data import DataSpec, require_rows
from domain.gbm.training import GbmTrainingOutcome, GbmTrainingSpec, plan_features


@dataclass(frozen=True)
class TrainGbmCommand:
    data: DataSpec
    spec: GbmTrainingSpec


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
    ) -> None:
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
        except BaseException:
            reservation.release()
            raise
        outcome = await self._runner.run(
            self._trainer.train,
            dataset,
            command.spec,
            plan,
            reservation=reservation,
            timeout=self._timeout,
        )
        # The worker times its own stages; reading or decoding the data happened here, before it.
        return replace(outcome, durations_ms=replace(outcome.durations_ms, load=load_ms))
