"""The ports the use cases depend on, named by role. Adapters subclass them explicitly. The job
engine's ports live in job_ports.py and are re-exported here."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

# Re-exported: the use cases and adapters name every port through this module.
from application.job_ports import (
    Claim as Claim,
)
from application.job_ports import (
    JobHandler as JobHandler,
)
from application.job_ports import (
    JobInput as JobInput,
)
from application.job_ports import (
    JobInputCodec as JobInputCodec,
)
from application.job_ports import (
    JobObserver as JobObserver,
)
from application.job_ports import (
    JobScheduler as JobScheduler,
)
from application.job_ports import (
    JobStore as JobStore,
)
from application.job_ports import (
    NoJobObserver as NoJobObserver,
)
from application.job_ports import (
    PreparedTask as PreparedTask,
)
from application.job_ports import (
    QueueDepth as QueueDepth,
)
from application.job_ports import (
    QueueLimits as QueueLimits,
)
from domain.content import ContentAnalysisResult, ContentSpec
from domain.data import Dataset, DataSpec
from domain.drift import DriftAnalysisResult, DriftSpec
from domain.gbm.training import FeaturePlan, GbmTrainingOutcome, GbmTrainingSpec
from domain.jobs import JobFailure
from domain.policies import PolicyAnalysisResult, PolicySpec
from domain.progress import ProgressReporter
from domain.segmentation import SegmentationResult, SegmentationSpec

R = TypeVar("R")
# The frame type a data source produces and the computations read. The ports name it as a type
# parameter (the domain knows no data library); the container pairs a source with computations of
# the same frame type, so an adapter receives the frame it declares, never a downcast.
F_out = TypeVar("F_out", covariant=True)
F_in = TypeVar("F_in", contravariant=True)



class DatasetSource(Protocol[F_out]):
    """Loads the data a request points at (inline rows or columns, or a database table)."""

    async def load(self, spec: DataSpec, *, max_rows: int) -> Dataset[F_out]:
        """Return the dataset; raise ValidationFailed for unknown tables/columns or bad values,
        PayloadTooLarge past `max_rows`, DependencyUnavailable when the database is down."""
        ...

    async def check(self) -> str | None:
        """None when the source is usable, else a short reason (for /health)."""
        ...


class ComputeCluster(Protocol):
    """A cluster some computations run on instead of this replica's pool (the Dask backend)."""

    async def check(self) -> str | None:
        """None when the cluster answers, else a short reason (for /health)."""
        ...


@dataclass(frozen=True)
class PoolCapacity:
    workers: int
    threads_per_task: int
    busy: int
    queued: int
    queue_limit: int


class Reservation(Protocol):
    """A place in the compute queue, taken before work is accepted so that a full pool answers
    BUSY at once instead of accepting work it cannot start."""

    def release(self) -> None:
        """Give the place back without running anything (idempotent)."""
        ...


class ComputeRunner(Protocol):
    """Runs CPU-bound callables away from the event loop (a process pool by default).

    `task` must be picklable (a module-level function or a picklable object's method). It is
    called as task(*args, progress=reporter) and its reports reach `on_progress` in this process.
    """

    def reserve(self) -> Reservation:
        """Take a queue place; raise Busy when every worker is busy and the queue is full."""
        ...

    async def run(
        self,
        task: Callable[..., R],
        *args: Any,
        reservation: Reservation | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        timeout: float | None = None,
        cancel_event: asyncio.Event | None = None,
        on_start: Callable[[], Awaitable[None]] | None = None,
        start_within: float | None = None,
    ) -> R:
        """Run the task (reserving a place first unless given one); `on_start` is awaited once a
        worker is free, just before the task starts (an error from it aborts the run). With
        `start_within`, Busy when no worker is free within that many seconds, and the wait counts
        against `timeout`.

        Raises Busy when no place is free, TaskTimedOut after `timeout` seconds, TaskCancelled once
        `cancel_event` is set, and WorkerLost when the process running it died; a failed task's
        WorkerError is re-raised."""
        ...

    def capacity(self) -> PoolCapacity:
        """How many workers there are and how busy they are: for /health and metrics."""
        ...

    def process_memory(self) -> Mapping[int, int]:
        """The resident bytes of each live compute process, by pid, read now (for metrics). Empty
        when tasks run in this process, whose own size the process metrics already give."""
        return {}


class ResultPresenter(Protocol):
    """Writes a job's typed result as the JSON document the job store keeps and /status returns. The
    job store holds wire JSON so that any replica serves any result without knowing its type."""

    def present(self, result: object) -> Mapping[str, Any]: ...

    def present_failure(self, job_type: str, failure: JobFailure) -> JobFailure:
        """The failure as the caller reads it (spec fields its message names, in wire names)."""
        ...


class Clock(Protocol):
    """Wall time for the job engine: leases, heartbeats and the reaper read and wait on it, so a test
    can move time instead of waiting for it."""

    def now(self) -> float:
        """Seconds since the epoch (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Returns once `seconds` have passed on this clock."""
        ...


class Segmenter(Protocol[F_in]):
    """Segments customers (K-Means or DBSCAN). Runs inside a compute worker: synchronous."""

    def segment(
        self, dataset: Dataset[F_in], spec: SegmentationSpec, progress: ProgressReporter
    ) -> SegmentationResult:
        """Segment the rows of a dataset whose spec the use case has checked; raise InsufficientData
        or ValidationFailed for what only the data shows."""
        ...


class PolicyAnalyzer(Protocol[F_in]):
    def analyze(
        self, dataset: Dataset[F_in], spec: PolicySpec, progress: ProgressReporter
    ) -> PolicyAnalysisResult:
        """The findings and recommendations (the presenters write them as openapi.yaml's
        PolicyAnalysisResult)."""
        ...


class ContentAnalyzer(Protocol[F_in]):
    def analyze(
        self, dataset: Dataset[F_in], spec: ContentSpec, progress: ProgressReporter
    ) -> ContentAnalysisResult:
        """The terms that move the target, channel and creative standings, the model's quality."""
        ...


class DriftAnalyzer(Protocol[F_in]):
    def analyze(
        self, dataset: Dataset[F_in], spec: DriftSpec, progress: ProgressReporter
    ) -> DriftAnalysisResult:
        """Each reference field's PSI/KS against the rows, the score's (with a model), and the
        model's performance on them (with a label)."""
        ...


class GbmTrainer(Protocol[F_in]):
    def train(
        self,
        dataset: Dataset[F_in],
        spec: GbmTrainingSpec,
        plan: FeaturePlan,
        progress: ProgressReporter,
    ) -> GbmTrainingOutcome:
        """Train on the features of `plan` (`plan_features(spec, dataset.schema)`, computed once by
        the caller), evaluate on the validation rows and dump the model contract."""
        ...
