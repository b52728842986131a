from __future__ import annotations

from application.analysis_task import SubmitAnalysis
from application.job_executor import JobExecutor
from application.ports import ContentAnalyzer, DatasetSource
from domain.content import ContentSpec, validate_content_spec
from domain.data import Dataset


class AnalyzeContent(SubmitAnalysis[ContentSpec]):
    job_type = "content_analysis"

    def __init__(
        self, datasets: DatasetSource, executor: JobExecutor, analyzer: ContentAnalyzer, max_rows: int
    ) -> None:
        super().__init__(datasets, executor, analyzer.analyze, max_rows)

    def validate(self, spec: ContentSpec, dataset: Dataset) -> None:
        validate_content_spec(spec, dataset.schema)
