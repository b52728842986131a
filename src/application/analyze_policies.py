from __future__ import annotations

from application.analysis_task import SubmitAnalysis
from application.job_executor import JobExecutor
from application.ports import DatasetSource, PolicyAnalyzer
from domain.data import Dataset
from domain.policies import PolicySpec, validate_policy_spec


class AnalyzePolicies(SubmitAnalysis[PolicySpec]):
    job_type = "policy_analysis"

    def __init__(
        self, datasets: DatasetSource, executor: JobExecutor, analyzer: PolicyAnalyzer, max_rows: int
    ) -> None:
        super().__init__(datasets, executor, analyzer.analyze, max_rows)

    def validate(self, spec: PolicySpec, dataset: Dataset) -> None:
        validate_policy_spec(spec, dataset.schema)
