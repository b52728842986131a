from __future__ import annotations

from typing import Any

from application.analysis_task import SubmitAnalysis
from application.ports import ComputeRunner, DatasetSource, JobScheduler, Segmenter
from domain.budget import ResourceBudget, ResourceEstimate, estimate_segmentation
from domain.data import ColumnKind, Dataset
from domain.segmentation import SegmentationSpec, validate_segmentation_spec
from domain.segmentation.spec import selected_fields


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
        budget: ResourceBudget | None = None,
    ) -> None:
        super().__init__(datasets, jobs, runner, segmenter.segment, max_rows, timeout_seconds, budget)

    def validate(self, spec: SegmentationSpec, dataset: Dataset[Any]) -> None:
        validate_segmentation_spec(spec, dataset.schema, dataset.row_count)

    def estimate(self, spec: SegmentationSpec, dataset: Dataset[Any]) -> ResourceEstimate:
        fields = selected_fields(spec, dataset.schema)
        categorical = sum(1 for name in fields if dataset.schema.get(name) is ColumnKind.CATEGORICAL)
        return estimate_segmentation(
            rows=dataset.row_count,
            numeric=len(fields) - categorical,
            categorical=categorical,
            max_categories=spec.max_categories,
            max_clusters=spec.max_clusters,
            sample=spec.silhouette_sample_size,
        )
