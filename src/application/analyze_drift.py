from __future__ import annotations

from typing import Any

from application.analysis_task import SubmitAnalysis
from application.ports import ComputeRunner, DatasetSource, DriftAnalyzer, JobScheduler
from domain.budget import ResourceBudget, ResourceEstimate, estimate_drift
from domain.data import Dataset
from domain.drift import DriftSpec, validate_drift_spec
from domain.drift.spec import drift_reference


class AnalyzeDrift(SubmitAnalysis[DriftSpec]):
    job_type = "drift_analysis"
    # The model's checks hash its canonical JSON: megabytes for a large ensemble.
    validate_in_thread = True

    def __init__(
        self,
        datasets: DatasetSource[Any],
        jobs: JobScheduler,
        runner: ComputeRunner,
        analyzer: DriftAnalyzer[Any],
        max_rows: int,
        timeout_seconds: float,
        budget: ResourceBudget | None = None,
    ) -> None:
        super().__init__(datasets, jobs, runner, analyzer.analyze, max_rows, timeout_seconds, budget)

    def validate(self, spec: DriftSpec, dataset: Dataset[Any]) -> None:
        validate_drift_spec(spec, dataset.schema)

    def estimate(self, spec: DriftSpec, dataset: Dataset[Any]) -> ResourceEstimate:
        model_columns = len(spec.model_state["feature_names"]) if spec.model_state is not None else 0
        return estimate_drift(
            rows=dataset.row_count,
            columns=len(drift_reference(spec)["fields"]),
            model_columns=model_columns,
        )
