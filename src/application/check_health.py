"""Readiness: whether each dependency this replica needs answers, and how busy its compute pool is.
The route only presents the report; it never calls a port itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from application.ports import ComputeCluster, ComputeRunner, DatasetSource, JobStore, PoolCapacity

JOB_STORE = "job_store"
DATABASE = "database"
COMPUTE_CLUSTER = "compute_cluster"


@dataclass(frozen=True)
class DependencyCheck:
    name: str  # JOB_STORE, DATABASE or COMPUTE_CLUSTER
    reason: str | None  # None: it answered and is usable
    # False: the replica stays ready without it (only the requests that need it are refused).
    required: bool = True

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class HealthReport:
    dependencies: tuple[DependencyCheck, ...]
    compute: PoolCapacity

    @property
    def healthy(self) -> bool:
        """Ready: every dependency it cannot serve without answers."""
        return all(check.ok for check in self.dependencies if check.required)

    @property
    def degraded(self) -> bool:
        return not all(check.ok for check in self.dependencies)


class CheckHealth:
    def __init__(
        self,
        store: JobStore,
        datasets: DatasetSource[Any],
        runner: ComputeRunner,
        *,
        uses_database: bool,
        timeout_seconds: float = 2.0,
        cluster: ComputeCluster | None = None,
    ) -> None:
        self._store = store
        self._datasets = datasets
        self._runner = runner
        self._uses_database = uses_database
        # Only large tables go to the cluster: without it, everything else is still served.
        self._cluster = cluster
        # A probe that hangs must not hang the readiness probe with it.
        self._timeout = timeout_seconds

    async def execute(self) -> HealthReport:
        probes: list[tuple[str, Callable[[], Awaitable[str | None]]]] = [(JOB_STORE, self._store.check)]
        if self._uses_database:
            probes.append((DATABASE, self._datasets.check))
        if self._cluster is not None:
            probes.append((COMPUTE_CLUSTER, self._cluster.check))
        checks = await asyncio.gather(*(self._check(name, probe) for name, probe in probes))
        return HealthReport(dependencies=tuple(checks), compute=self._runner.capacity())

    async def _check(self, name: str, probe: Callable[[], Awaitable[str | None]]) -> DependencyCheck:
        try:
            reason = await asyncio.wait_for(probe(), self._timeout)
        except TimeoutError:
            reason = f"no answer within {self._timeout:.0f} s"
        return DependencyCheck(name, reason, required=name != COMPUTE_CLUSTER)
