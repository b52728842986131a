"""Sends each training to the trainer that can reach its rows: a dataset computed elsewhere (a
table left on the database for the Dask cluster) to the cluster's trainer, the others to LightGBM
in this process. Chosen by the dataset's own `computed_elsewhere`, so neither the use case nor this
module names a backend's dataset class."""

from __future__ import annotations

from typing import Any

from application.ports import GbmTrainer
from domain.data import Dataset
from domain.errors import InternalFailure
from domain.gbm.training import FeaturePlan, GbmTrainingOutcome, GbmTrainingSpec
from domain.progress import ProgressReporter


class RoutingGbmTrainer(GbmTrainer[Any]):
    def __init__(self, local: GbmTrainer[Any], elsewhere: GbmTrainer[Any] | None) -> None:
        self._local = local
        self._elsewhere = elsewhere

    def train(
        self, dataset: Dataset[Any], spec: GbmTrainingSpec, plan: FeaturePlan, progress: ProgressReporter
    ) -> GbmTrainingOutcome:
        if not dataset.computed_elsewhere:
            return self._local.train(dataset, spec, plan, progress)
        if self._elsewhere is None:
            raise InternalFailure("a dataset computed elsewhere reached a worker with no cluster trainer")
        return self._elsewhere.train(dataset, spec, plan, progress)
