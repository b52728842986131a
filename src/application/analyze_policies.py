from __future__ import annotations

from typing import Any

from application.analysis_task import SubmitAnalysis
from application.ports import ComputeRunner, DatasetSource, JobScheduler, PolicyAnalyzer
from domain.budget import ResourceBudget, ResourceEstimate, estimate_policies
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
        budget: ResourceBudget | None = None,
    ) -> None:
        super().__init__(datasets, jobs, runner, analyzer.analyze, max_rows, timeout_seconds, budget)

    def validate(self, spec: PolicySpec, dataset: Dataset[Any]) -> None:
        validate_policy_spec(spec, dataset.schema)

    def estimate(self, spec: PolicySpec, dataset: Dataset[Any]) -> ResourceEstimate:
        return estimate_policies(rows=dataset.row_count)
