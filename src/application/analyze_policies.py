from __future__ import annotations

from typing import Any

from application.analysis_task import SubmitAnalysis
from application.ports import ComputeRunner, DatasetSource, JobScheduler, PolicyAnalyzer
from domain.data import Dataset
from domain.policies import PolicySpec, validate_policy_spec


class AnalyzePolicies(SubmitAnalysis[PolicySpec]):
    job_type = "policy_analysis"

    def __init__(
        self,
        datasets: DatasetSource[Any],
        jobs: JobScheduler,
        runner: ComputeRunner,
        analyzer: PolicyAnalyzer[Any],
        max_rows: int,
        timeout_seconds: float,
    ) -> None:
        super().__init__(datasets, jobs, runner, analyzer.analyze, max_rows, timeout_seconds)

    def validate(self, spec: PolicySpec, dataset: Dataset[Any]) -> None:
        validate_policy_spec(spec, dataset.schema)
