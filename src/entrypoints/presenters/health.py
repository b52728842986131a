"""/health and the compute gauges on the wire."""

from __future__ import annotations

from typing import Any

from application.check_health import COMPUTE_CLUSTER, DATABASE, JOB_STORE, HealthReport
from application.ports import PoolCapacity

CAPABILITIES = ["policy_analysis", "segmentation", "content_analysis", "gbm_training", "drift_analysis"]
# The compute cluster is a Dask scheduler: the only cluster backend there is.
_DEPENDENCY_NAMES = {JOB_STORE: "jobStore", DATABASE: "database", COMPUTE_CLUSTER: "dask"}


def capacity_view(capacity: PoolCapacity) -> dict[str, int]:
    return {
        "workers": capacity.workers,
        "threadsPerTask": capacity.threads_per_task,
        "busy": capacity.busy,
        "queued": capacity.queued,
        "queueLimit": capacity.queue_limit,
    }


def health_view(report: HealthReport, *, version: str, job_store: str, data_source: str) -> dict[str, Any]:
    return {
        # Degraded when anything is down; the HTTP status (routes.py) says whether it is still ready.
        "status": "degraded" if report.degraded else "ok",
        "capabilities": CAPABILITIES,
        "version": version,
        "jobStore": job_store,
        "dataSource": data_source,
        "dependencies": [
            {
                "name": _DEPENDENCY_NAMES[check.name],
                "status": "ok" if check.ok else "degraded",
                "reason": check.reason,
            }
            for check in report.dependencies
        ],
        "compute": capacity_view(report.compute),
    }
