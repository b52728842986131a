from __future__ import annotations

from typing import Any

from application.analysis_task import SubmitAnalysis
from application.ports import DatasetSource, JobScheduler, Segmenter
from domain.data import Dataset
from domain.segmentation import SegmentationSpec, validate_segmentation_spec


class SegmentCustomers(SubmitAnalysis[SegmentationSpec]):
    job_type = "segmentation"

    def __init__(
        self, datasets: DatasetSource[Any], jobs: JobScheduler, segmenter: Segmenter[Any], max_rows: int
    ) -> None:
        super().__init__(datasets, jobs, segmenter.segment, max_rows)

    def validate(self, spec: SegmentationSpec, dataset: Dataset[Any]) -> None:
        validate_segmentation_spec(spec, dataset.schema, dataset.row_count)
