"""The job engine's events as Prometheus metrics: outcomes and durations by job type and final
state, and the jobs this replica holds queued or running.

Counted in the server process, where the engine runs (the compute processes only run the tasks),
so each replica's /metrics counts the jobs it ran; sum over replicas for the service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from application.ports import JobObserver
from domain.jobs import JobStatus

# Jobs take from a tenth of a second (a small segmentation) to the 30 minutes a job may be given.
JOB_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)


class PrometheusJobObserver(JobObserver):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.submitted = Counter(
            "ml_worker_jobs_submitted_total", "Jobs accepted", ["type"], registry=registry
        )
        self.finished = Counter(
            "ml_worker_jobs_finished_total",
            "Jobs that reached a final state; code is the error code of a failed one",
            ["type", "status", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "ml_worker_job_duration_seconds",
            "Time from submission to the final state (queue wait included)",
            ["type", "status"],
            buckets=JOB_SECONDS_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "ml_worker_job_queue_wait_seconds",
            "Time from submission until a compute worker took the job",
            ["type"],
            buckets=JOB_SECONDS_BUCKETS,
            registry=registry,
        )
        self.queued = Gauge(
            "ml_worker_jobs_queued", "Jobs waiting for a compute worker", ["type"], registry=registry
        )
        self.running = Gauge("ml_worker_jobs_running", "Jobs computing now", ["type"], registry=registry)

    def job_queued(self, job_type: str) -> None:
        self.submitted.labels(job_type).inc()
        self.queued.labels(job_type).inc()

    def job_started(self, job_type: str, waited_seconds: float) -> None:
        self.queued.labels(job_type).dec()
        self.running.labels(job_type).inc()
        self.queue_wait.labels(job_type).observe(max(0.0, waited_seconds))

    def job_finished(
        self, job_type: str, status: JobStatus, error_code: str | None, seconds: float, *, started: bool
    ) -> None:
        (self.running if started else self.queued).labels(job_type).dec()
        self.finished.labels(job_type, status.value, error_code or "").inc()
        # A wall clock stepped back must not make a negative duration.
        self.duration.labels(job_type, status.value).observe(max(0.0, seconds))
