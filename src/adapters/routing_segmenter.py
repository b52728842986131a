"""Sends each segmentation to the segmenter that can reach its rows, as routing_trainer.py does for
trainings: by the dataset's own `computed_elsewhere`."""

from __future__ import annotations

from typing import Any

from application.ports import Segmenter
from domain.data import Dataset
from domain.errors import InternalFailure
from domain.progress import ProgressReporter
from domain.segmentation import SegmentationResult, SegmentationSpec


class RoutingSegmenter(Segmenter[Any]):
    def __init__(self, local: Segmenter[Any], elsewhere: Segmenter[Any] | None) -> None:
        self._local = local
        self._elsewhere = elsewhere

    def segment(
        self, dataset: Dataset[Any], spec: SegmentationSpec, progress: ProgressReporter
    ) -> SegmentationResult:
        if not dataset.computed_elsewhere:
            return self._local.segment(dataset, spec, progress)
        if self._elsewhere is None:
            raise InternalFailure("a dataset computed elsewhere reached a worker with no cluster segmenter")
        return self._elsewhere.segment(dataset, spec, progress)
