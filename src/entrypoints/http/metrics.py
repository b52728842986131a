"""Prometheus metrics of one app instance, on the registry its container made (so tests can build
many apps): HTTP requests, synchronous trainings, the compute pool, and the resident memory of the
server and of each compute process. The job engine's metrics are on the same registry, from the
container's job observer."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import ClientDisconnect

from application.ports import ComputeRunner
from domain.errors import WorkerError

# A training takes from a tenth of a second to the 30 minutes a long one may be given.
TRAINING_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class _ComputeCollector(Collector):
    """Read at scrape time, not sampled by a thread: the numbers are those of the moment of the scrape."""

    def __init__(self, runner: ComputeRunner) -> None:
        self._runner = runner

    def collect(self) -> Iterable[Metric]:
        capacity = self._runner.capacity()
        yield _gauge("ml_worker_compute_workers", "Compute worker processes", capacity.workers)
        yield _gauge(
            "ml_worker_compute_threads_per_task",
            "Threads each compute task may use",
            capacity.threads_per_task,
        )
        yield _gauge(
            "ml_worker_compute_queue_limit",
            "Tasks that may wait when every worker is busy",
            capacity.queue_limit,
        )
        tasks = GaugeMetricFamily(
            "ml_worker_compute_tasks", "Compute tasks (jobs and trainings) by state", labels=["state"]
        )
        tasks.add_metric(["running"], capacity.busy)
        tasks.add_metric(["queued"], capacity.queued)
        yield tasks
        memory = GaugeMetricFamily(
            "ml_worker_compute_process_resident_memory_bytes",
            "Resident memory of each compute process (the server's own is process_resident_memory_bytes)",
            labels=["pid"],
        )
        for pid, size in sorted(self._runner.process_memory().items()):
            memory.add_metric([str(pid)], size)
        yield memory


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # The server process's own memory, CPU and open files (process_*), as the default registry has.
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "ml_worker_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ml_worker_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.training_seconds = Histogram(
            "ml_worker_training_duration_seconds",
            "Synchronous trainings, from reading their data to the model or the error; outcome is ok "
            "or the error code",
            ["outcome"],
            buckets=TRAINING_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.training_rows = Histogram(
            "ml_worker_training_rows",
            "Rows per successful training",
            buckets=(1e2, 1e3, 5e3, 1e4, 5e4, 1e5, 5e5, 1e6, 5e6),
            registry=self.registry,
        )

    def watch_compute(self, runner: ComputeRunner) -> None:
        self.registry.register(_ComputeCollector(runner))

    @contextmanager
    def training(self) -> Iterator[None]:
        """Times one training and counts it under its outcome: ok, or the code of the error that
        ended it (CLIENT_DISCONNECTED when its caller hung up)."""
        started = time.perf_counter()
        outcome = "INTERNAL"
        try:
            yield
            outcome = "ok"
        except WorkerError as error:
            outcome = error.code
            raise
        except ClientDisconnect:
            outcome = "CLIENT_DISCONNECTED"
            raise
        finally:
            self.training_seconds.labels(outcome).observe(time.perf_counter() - started)
