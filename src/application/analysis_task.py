"""What the three analysis use cases share: load and check the data at submission (so a bad
request is refused before any job exists), then queue the analysis as a job whose result carries
the caller's identifiers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from application.ports import DatasetSource, JobScheduler
from domain.data import Dataset, DataSpec, require_rows
from domain.jobs import EchoedResult, Job, RequestEcho
from domain.progress import ProgressReporter

S = TypeVar("S")
Analysis = Callable[[Dataset[Any], S, ProgressReporter], object]


def run_analysis(
    analyze: Analysis[Any],
    dataset: Dataset[Any],
    spec: Any,
    echo: RequestEcho,
    *,
    progress: ProgressReporter,
) -> EchoedResult[object]:
    """Runs in a compute worker: `analyze` is a picklable adapter's bound method."""
    return EchoedResult(analyze(dataset, spec, progress), echo)


class SubmitAnalysis(Generic[S]):
    job_type: ClassVar[str]

    def __init__(
        self, datasets: DatasetSource[Any], jobs: JobScheduler, analyze: Analysis[S], max_rows: int
    ) -> None:
        self._datasets = datasets
        self._jobs = jobs
        self._analyze = analyze
        self._max_rows = max_rows

    def validate(self, spec: S, dataset: Dataset[Any]) -> None:
        """Raise ValidationFailed or InsufficientData for what the request and schema already show."""
        raise NotImplementedError

    async def submit(self, data: DataSpec, spec: S, echo: RequestEcho) -> Job:
        dataset = await self._datasets.load(data, max_rows=self._max_rows)
        require_rows(dataset)
        self.validate(spec, dataset)
        return await self._jobs.submit(self.job_type, run_analysis, self._analyze, dataset, spec, echo)
