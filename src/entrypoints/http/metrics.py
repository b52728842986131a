"""Prometheus metrics of one app instance (its own registry, so tests can build many apps)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from application.ports import PoolCapacity
from entrypoints.presenters.health import capacity_view


class _ComputeCollector(Collector):
    def __init__(self, capacity: Callable[[], PoolCapacity]) -> None:
        self._capacity = capacity

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily("ml_worker_compute", "Compute pool state", labels=["state"])
        for key, value in capacity_view(self._capacity()).items():
            gauge.add_metric([key], value)
        yield gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
            "LightGBM training time (fit only)",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
            registry=self.registry,
        )
        self.training_rows = Histogram(
            "ml_worker_training_rows",
            "Rows per training",
            buckets=(1e2, 1e3, 5e3, 1e4, 5e4, 1e5, 5e5, 1e6, 5e6),
            registry=self.registry,
        )
        self.jobs_submitted = Counter(
            "ml_worker_jobs_submitted_total", "Jobs accepted", ["type"], registry=self.registry
        )

    def watch_compute(self, capacity: Callable[[], PoolCapacity]) -> None:
        self.registry.register(_ComputeCollector(capacity))
