from __future__ import annotations

from application.analysis_task import SubmitAnalysis
from application.job_executor import JobExecutor
from application.ports import DatasetSource, Segmenter
from domain.data import Dataset
from domain.segmentation import SegmentationSpec, validate_segmentation_spec


class SegmentCustomers(SubmitAnalysis[SegmentationSpec]):
    job_type = "segmentation"

    def __init__(
        self, datasets: DatasetSource, executor: JobExecutor, segmenter: Segmenter, max_rows: int
    ) -> None:
        super().__init__(datasets, executor, segmenter.segment, max_rows)

    def validate(self, spec: SegmentationSpec, dataset: Dataset) -> None:
        validate_segmentation_spec(spec, dataset.schema, dataset.row_count)
