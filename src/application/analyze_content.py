from __future__ import annotations

from typing import Any

from application.analysis_task import SubmitAnalysis
from application.ports import ComputeRunner, ContentAnalyzer, DatasetSource, JobScheduler
from domain.budget import ResourceBudget, ResourceEstimate, estimate_content
from domain.content import ContentSpec, validate_content_spec
from domain.content.spec import present_text_fields
from domain.data import Dataset


class AnalyzeContent(SubmitAnalysis[ContentSpec]):
    job_type = "content_analysis"

    def __init__(
        self,
        datasets: DatasetSource[Any],
        jobs: JobScheduler,
        runner: ComputeRunner,
        analyzer: ContentAnalyzer[Any],
        max_rows: int,
        timeout_seconds: float,
        budget: ResourceBudget | None = None,
    ) -> None:
        super().__init__(datasets, jobs, runner, analyzer.analyze, max_rows, timeout_seconds, budget)

    def validate(self, spec: ContentSpec, dataset: Dataset[Any]) -> None:
        validate_content_spec(spec, dataset.schema)

    def estimate(self, spec: ContentSpec, dataset: Dataset[Any]) -> ResourceEstimate:
        return estimate_content(
            rows=dataset.row_count, text_fields=len(present_text_fields(spec, dataset.schema))
        )
