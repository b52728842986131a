"""What the three analysis use cases share: load and check the data at submission (so a bad
request is refused before any job exists), then queue the analysis as a job whose result echoes
the caller's identifiers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from application.job_executor import JobExecutor
from application.ports import DatasetSource
from domain.data import Dataset, DataSpec, require_rows
from domain.jobs import Job
from domain.progress import ProgressReporter

S = TypeVar("S")
Analysis = Callable[[Dataset, S, ProgressReporter], dict[str, Any]]


def run_analysis(
    analyze: Analysis[Any],
    dataset: Dataset,
    spec: Any,
    echo: Mapping[str, str | None],
    *,
    progress: ProgressReporter,
) -> dict[str, Any]:
    """Runs in a compute worker: `analyze` is a picklable adapter's bound method."""
    result = analyze(dataset, spec, progress)
    result.update({key: value for key, value in echo.items() if value is not None})
    return result


class SubmitAnalysis(Generic[S]):
    job_type: ClassVar[str]

    def __init__(
        self, datasets: DatasetSource, executor: JobExecutor, analyze: Analysis[S], max_rows: int
    ) -> None:
        self._datasets = datasets
        self._executor = executor
        self._analyze = analyze
        self._max_rows = max_rows

    def validate(self, spec: S, dataset: Dataset) -> None:
        """Raise ValidationFailed or InsufficientData for what the request and schema already show."""
        raise NotImplementedError

    async def submit(self, data: DataSpec, spec: S, echo: Mapping[str, str | None]) -> Job:
        dataset = await self._datasets.load(data, max_rows=self._max_rows)
        require_rows(dataset)
        self.validate(spec, dataset)
        return await self._executor.submit(
            self.job_type, run_analysis, self._analyze, dataset, spec, dict(echo)
        )
