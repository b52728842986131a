from __future__ import annotations

from typing import Any

from application.analysis_task import SubmitAnalysis
from application.ports import ComputeRunner, DatasetSource, JobScheduler, Segmenter
from domain.data import Dataset
from domain.segmentation import SegmentationSpec, validate_segmentation_spec


class SegmentCustomers(SubmitAnalysis[SegmentationSpec]):
    job_type = "segmentation"

    def __init__(
        self,
        datasets: DatasetSource[Any],
        jobs: JobScheduler,
        runner: ComputeRunner,
        segmenter: Segmenter[Any],
        max_rows: int,
        timeout_seconds: float,
    ) -> None:
        super().__init__(datasets, jobs, runner, segmenter.segment, max_rows, timeout_seconds)

    def validate(self, spec: SegmentationSpec, dataset: Dataset[Any]) -> None:
        validate_segmentation_spec(spec, dataset.schema, dataset.row_count)
