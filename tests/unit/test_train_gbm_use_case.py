"""TrainGbm plans the features once, in the server: the trainer gets that plan and trains on it."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from adapters.compute.inline_runner import InlineRunner
from adapters.frames import PolarsDataset
from adapters.gbm.trainer import LightGbmTrainer
from adapters.inline.dataset_source import InlineDatasetSource
from application.errors import TaskTimedOut
from application.ports import GbmTrainer
from application.train_gbm import TrainGbm, TrainGbmCommand
from domain.data import InlineColumns
from domain.errors import ValidationFailed
from domain.gbm.training import FeaturePlan, GbmParams, GbmTrainingOutcome, GbmTrainingSpec, plan_features
from domain.progress import ProgressReporter, no_progress
from support.clock import FakeClock


class _RecordingTrainer(GbmTrainer[pl.DataFrame]):
    def __init__(self) -> None:
        self.calls: list[tuple[GbmTrainingSpec, FeaturePlan]] = []

    def train(
        self, dataset: Any, spec: GbmTrainingSpec, plan: FeaturePlan, progress: ProgressReporter
    ) -> GbmTrainingOutcome:
        self.calls.append((spec, plan))
        raise ValidationFailed("recorded")  # the outcome does not matter here


def _columns(n: int = 40) -> dict[str, list[Any]]:
    rng = np.random.default_rng(0)
    return {
        "id": list(range(n)),
        "age": rng.normal(size=n).tolist(),
        "colour": rng.choice(["red", "blue"], size=n).tolist(),
        "y": [i % 2 for i in range(n)],
    }


def _use_case(trainer: GbmTrainer[Any]) -> TrainGbm:
    return TrainGbm(
        InlineDatasetSource(), InlineRunner(), trainer, max_rows=1000, timeout_seconds=30, clock=FakeClock()
    )


async def test_the_trainer_gets_the_plan_the_server_made() -> None:
    trainer = _RecordingTrainer()
    spec = GbmTrainingSpec(label="y")
    with pytest.raises(ValidationFailed, match="recorded"):
        await _use_case(trainer).execute(TrainGbmCommand(InlineColumns(_columns()), spec))
    [(given_spec, plan)] = trainer.calls
    assert given_spec == spec
    assert plan == FeaturePlan(numeric=("age",), categorical=("colour",))


async def test_a_name_mistake_never_reaches_the_trainer() -> None:
    trainer = _RecordingTrainer()
    command = TrainGbmCommand(InlineColumns(_columns()), GbmTrainingSpec(label="y", features=("shoe",)))
    with pytest.raises(ValidationFailed) as caught:
        await _use_case(trainer).execute(command)
    assert caught.value.details[0]["field"] == "features"
    assert trainer.calls == []


def test_the_trainer_trains_on_the_plan_it_is_given() -> None:
    dataset = PolarsDataset(pl.DataFrame(_columns(200)))
    spec = GbmTrainingSpec(label="y", params=GbmParams(num_iterations=3, min_data_in_leaf=5))
    assert plan_features(spec, dataset.schema).inputs == ("age", "colour")
    outcome = LightGbmTrainer(1).train(
        dataset, spec, FeaturePlan(numeric=("age",), categorical=()), no_progress
    )
    assert [f.field for f in outcome.feature_importance] == ["age"]
    assert outcome.model_state["feature_names"] == ["age"]


class _CountingRunner(InlineRunner):
    def __init__(self) -> None:
        super().__init__(queue_limit=1)  # one place: a reservation never released makes the next Busy
        self.timeouts: list[float | None] = []

    async def run(self, fn: Any, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        self.timeouts.append(timeout)
        return await super().run(fn, *args, timeout=timeout, **kwargs)


async def test_the_deadline_counts_from_the_request_arrival() -> None:
    clock, runner = FakeClock(start=1000.0), _CountingRunner()
    use_case = TrainGbm(InlineDatasetSource(), runner, _RecordingTrainer(), 1000, 30, clock)
    command = TrainGbmCommand(InlineColumns(_columns()), GbmTrainingSpec(label="y"), received_at=988.0)
    with pytest.raises(ValidationFailed, match="recorded"):
        await use_case.execute(command)
    assert runner.timeouts == [pytest.approx(18.0)]  # 30 s from arrival, 12 of them already gone


async def test_a_request_past_its_deadline_never_trains_and_frees_its_place() -> None:
    clock, runner, trainer = FakeClock(start=1000.0), _CountingRunner(), _RecordingTrainer()
    use_case = TrainGbm(InlineDatasetSource(), runner, trainer, 1000, 30, clock)
    late = TrainGbmCommand(InlineColumns(_columns()), GbmTrainingSpec(label="y"), received_at=969.0)
    with pytest.raises(TaskTimedOut, match="30 s of the request's arrival"):
        await use_case.execute(late)
    assert trainer.calls == [] and runner.timeouts == []
    # The place it had reserved is free again: a request on time trains.
    on_time = TrainGbmCommand(InlineColumns(_columns()), GbmTrainingSpec(label="y"), received_at=999.0)
    with pytest.raises(ValidationFailed, match="recorded"):
        await use_case.execute(on_time)
    assert runner.timeouts == [pytest.approx(29.0)]
