"""The job engine's events as Prometheus metrics: outcomes and durations by job type and final
state, claims and requeues, the jobs this replica runs, and the store's queue depth.

Counted in the server process, where the engine runs (the compute processes only run the tasks),
so each replica's /metrics counts the jobs it ran; sum over replicas for the service."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from application.ports import JobObserver, QueueDepth
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
        self.claimed = Counter(
            "ml_worker_jobs_claimed_total",
            "Job attempts this replica claimed from the queue",
            ["type"],
            registry=registry,
        )
        self.requeued = Counter(
            "ml_worker_jobs_requeued_total",
            "Jobs given back to the queue: reason shutdown (by this replica) or lease_expired (a "
            "dead replica's, by this replica's reaper)",
            ["type", "reason"],
            registry=registry,
        )
        self.lost = Counter(
            "ml_worker_jobs_lost_total",
            "Jobs failed WORKER_LOST by this replica's reaper: their replica died on their last attempt",
            ["type"],
            registry=registry,
        )
        self.running = Gauge("ml_worker_jobs_running", "Jobs computing now", ["type"], registry=registry)
        # The store's queue, shared by every replica: the same value on each (take max, not sum).
        self.queue_depth = Gauge(
            "ml_worker_job_queue_depth",
            "Jobs in the job store by state (queued, running), as this replica last read it",
            ["state"],
            registry=registry,
        )
        self.queue_payload = Gauge(
            "ml_worker_job_queue_payload_bytes",
            "Bytes of input held for active jobs in the job store, as this replica last read it",
            registry=registry,
        )

    def job_queued(self, job_type: str) -> None:
        self.submitted.labels(job_type).inc()

    def job_started(self, job_type: str, waited_seconds: float) -> None:
        self.claimed.labels(job_type).inc()
        self.running.labels(job_type).inc()
        self.queue_wait.labels(job_type).observe(max(0.0, waited_seconds))

    def job_finished(
        self, job_type: str, status: JobStatus, error_code: str | None, seconds: float, *, started: bool
    ) -> None:
        if started:
            self.running.labels(job_type).dec()
        self.finished.labels(job_type, status.value, error_code or "").inc()
        # A wall clock stepped back must not make a negative duration.
        self.duration.labels(job_type, status.value).observe(max(0.0, seconds))

    def job_requeued(self, job_type: str, reason: str) -> None:
        self.requeued.labels(job_type, reason).inc()
        if reason == "shutdown":  # one of this replica's running jobs (a lost one ran elsewhere)
            self.running.labels(job_type).dec()

    def job_lost(self, job_type: str) -> None:
        self.lost.labels(job_type).inc()

    def queue_read(self, depth: QueueDepth) -> None:
        self.queue_depth.labels("queued").set(depth.queued)
        self.queue_depth.labels("running").set(depth.running)
        self.queue_payload.set(depth.payload_bytes)
