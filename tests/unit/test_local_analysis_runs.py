"""An analysis run at once through the compute runner, as the offline CLI runs it: the data loaded
and checked as a submission does, the result echoed, progress reported to the caller, the same
per-type time limit as the job engine's, and no job engine started."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.compute.inline_runner import InlineRunner
from adapters.inline.dataset_source import InlineDatasetSource
from application.ports import JobScheduler
from application.segment_customers import SegmentCustomers
from domain.data import FileRef, InlineColumns
from domain.errors import ValidationFailed
from domain.jobs import EchoedResult, Job, RequestEcho
from domain.segmentation import SegmentationSpec
from entrypoints.container import offline_container, resolve_offline_services
from entrypoints.settings import Settings

DATA = InlineColumns({"a": [float(i) for i in range(30)], "b": [float(i % 7) for i in range(30)]})


class _NoScheduling(JobScheduler):
    async def submit(self, job_type: str, task: Callable[..., object], *args: Any) -> Job:
        raise AssertionError("a local run must not schedule a job")

    def cancel_local(self, job_id: str) -> None:
        raise AssertionError("a local run must not cancel a job")


class _HalfwaySegmenter:
    def __init__(self) -> None:
        self.calls = 0

    def segment(self, dataset: Any, spec: SegmentationSpec, progress: Callable[..., None]) -> dict[str, Any]:
        self.calls += 1
        progress(0.5, "halfway")
        return {"k": spec.min_clusters, "rowCount": dataset.row_count}


def _use_case(segmenter: _HalfwaySegmenter) -> SegmentCustomers:
    return SegmentCustomers(InlineDatasetSource(), _NoScheduling(), InlineRunner(), segmenter, 1000, 60)


async def test_a_local_run_returns_the_echoed_result_and_reports_progress() -> None:
    use_case = _use_case(_HalfwaySegmenter())
    spec = SegmentationSpec(min_clusters=3, max_clusters=5)
    reports: list[tuple[float, str]] = []
    dataset = await use_case.load(DATA, spec)
    echo = RequestEcho(schema_id="s1")
    echoed = await use_case.run(dataset, spec, echo, on_progress=lambda f, m: reports.append((f, m)))
    assert echoed == EchoedResult({"k": 3, "rowCount": 30}, echo)
    assert reports == [(0.5, "halfway")]


async def test_load_refuses_what_a_submission_refuses_before_anything_runs() -> None:
    segmenter = _HalfwaySegmenter()
    use_case = _use_case(segmenter)
    with pytest.raises(ValidationFailed) as caught:
        await use_case.load(DATA, SegmentationSpec(fields=("a", "ghost")))
    assert any("ghost" in str(detail) for detail in caught.value.details)
    assert segmenter.calls == 0


async def test_the_offline_container_runs_an_analysis_without_starting_the_job_engine(tmp_path: Path) -> None:
    path = tmp_path / "points.csv"
    path.write_text("x,y\n" + "".join(f"{i % 3 * 10 + i / 100},{i % 3 * 5}\n" for i in range(60)))
    settings = Settings(compute="inline", database_url=None, job_timeouts={"segmentation": 7.5})
    container = offline_container(settings)
    try:
        services = await resolve_offline_services(container)
        use_case = services.segment_customers
        spec = SegmentationSpec(min_clusters=2, max_clusters=4)
        dataset = await use_case.load(FileRef(str(path)), spec)
        document = services.result_presenter.present(await use_case.run(dataset, spec, RequestEcho()))
        assert document["k"] == 3 and document["rowCount"] == 60
        assert "schemaId" not in document  # nothing to echo
        assert not container.job_store.initialized
        assert not container.executor.initialized
        # The job engine's limits, per analysis type, apply to local runs too.
        assert services.segment_customers._timeout == 7.5
        assert services.analyze_content._timeout == settings.job_timeout_seconds
    finally:
        await container.shutdown_resources()  # type: ignore[misc]
