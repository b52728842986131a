"""deploy/grafana/ml-worker-dashboard.json queries only what the app exposes: every PromQL
expression in it is tokenised (a small lexer that fails on anything it does not know), its metric
names and grouping labels are extracted, and each metric must have samples, and each label must be
one of those samples' labels, in a real /metrics scrape of the app (compute processes and all)
after one training and one finished analysis job."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.app import make_app, started
from support.http import finished_job

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "ml-worker-dashboard.json"
CHART_COPY = ROOT / "helm" / "ml-worker" / "dashboards" / "ml-worker-dashboard.json"

_TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<range>\[[^\[\]]+\])
      | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<punct>=~|!~|!=|==|<=|>=|[(){},+\-*/%^<>=])
      | (?P<space>\s+)""",
    re.VERBOSE,
)
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "stddev"}
FUNCTIONS = AGGREGATIONS | {
    "rate", "irate", "increase", "delta", "histogram_quantile", "clamp_min", "abs", "vector",
    "label_replace", "avg_over_time", "max_over_time", "min_over_time",
}  # fmt: skip
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
OPERATORS = {"and", "or", "unless", "bool", "offset"}
# Labels Prometheus adds to every scraped series; the app's own scrape cannot show them.
TARGET_LABELS = {"job", "instance"}


def tokens(expr: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        assert match is not None, f"cannot read {expr[position:]!r} in {expr!r}"
        position = match.end()
        if match.lastgroup != "space":
            yield match.lastgroup or "", match.group()


def parse(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names it groups, matches or joins on) of one expression."""
    metrics: set[str] = set()
    labels: set[str] = set()
    seen = list(tokens(expr))
    depth = braces = 0
    i = 0
    while i < len(seen):
        kind, text = seen[i]
        following = seen[i + 1][1] if i + 1 < len(seen) else ""
        if text in "()":
            depth += 1 if text == "(" else -1
        elif text in "{}":
            braces += 1 if text == "{" else -1
        elif kind == "ident" and braces:
            labels.add(text)  # a matcher's label name
        elif kind == "ident" and text in GROUPING:
            assert following == "(", f"{text} without a label list in {expr!r}"
            close = next(j for j in range(i + 1, len(seen)) if seen[j][1] == ")")
            labels.update(t for k, t in seen[i + 2 : close] if k == "ident")
            i = close
        elif kind == "ident" and (following == "(" or (text in AGGREGATIONS and following in GROUPING)):
            assert text in FUNCTIONS, f"unknown function {text} in {expr!r}"
        elif kind == "ident" and text not in OPERATORS:
            metrics.add(text)
        assert depth >= 0 and braces >= 0, f"unbalanced {expr!r}"
        i += 1
    assert depth == 0 and braces == 0, f"unbalanced {expr!r}"
    return metrics, labels


def test_the_lexer_reads_the_names_and_refuses_what_it_cannot_read() -> None:
    metrics, labels = parse(
        'histogram_quantile(0.95, sum by (route, le) (rate(a_seconds_bucket{job=~"$job"}[$__rate_interval])))'
        " + on (instance) b_total"
    )
    assert metrics == {"a_seconds_bucket", "b_total"}
    assert labels == {"route", "le", "job", "instance"}
    with pytest.raises(AssertionError, match="unknown function"):
        parse("rat(a_total[5m])")
    with pytest.raises(AssertionError, match="unbalanced"):
        parse("sum(a_total")
    with pytest.raises(AssertionError, match="cannot read"):
        parse("a_total[5m] @ $start")


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def panels(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in document["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, expression, legend) of every query, the template variables' included."""
    found = [
        (panel["title"], target["expr"], target.get("legendFormat", ""))
        for panel in panels(document)
        for target in panel.get("targets", [])
    ]
    for variable in document["templating"]["list"]:
        if variable["type"] == "query":
            call = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"]["query"])
            assert call, variable
            found.append((f"${variable['name']}", f"{call[1]}{{{call[2]}!=''}}", ""))
    return found


def test_the_dashboard_is_a_plain_model_on_a_prometheus_input() -> None:
    document = dashboard()
    assert [i["name"] for i in document["__inputs"]] == ["DS_PROMETHEUS"]
    graphs = [p for p in panels(document) if p["type"] != "row"]
    assert len(graphs) >= 8
    for panel in graphs:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    # The chart ships the same file (helm/ml-worker/dashboards; Helm reads only its own folder).
    assert CHART_COPY.read_bytes() == DASHBOARD.read_bytes()


def _columns(n: int) -> dict[str, list[float]]:
    # Three well separated groups on two axes: a segmentation finds them in a fraction of a second.
    return {
        "f0": [float((i % 3) * 10 + (i % 7) * 0.1) for i in range(n)],
        "f1": [float((i % 3) * -10 + (i % 5) * 0.1) for i in range(n)],
    }


@pytest.fixture
async def scrape() -> AsyncIterator[dict[str, set[str]]]:
    """Sample name -> the label names its samples carry, after one training and one finished job."""
    app = make_app(compute="process", workers=1, threads_per_task=1)
    async with started(app, timeout=120) as client:
        trained = await client.post(
            "/train/gbm",
            json={
                "data": {
                    "columns": {"x": [float(i % 7) for i in range(60)], "y": [i % 2 for i in range(60)]}
                },
                "label": "y",
                "params": {"numIterations": 2},
            },
        )
        assert trained.status_code == 200, trained.text
        submitted = await client.post(
            "/analyze/segments", json={"data": {"columns": _columns(300)}, "minClusters": 2, "maxClusters": 4}
        )
        assert submitted.status_code == 202, submitted.text
        job = await finished_job(client, submitted.headers["location"], timeout=120)
        assert job["status"] == "completed", job
        text = (await client.get("/metrics")).text
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    yield names


async def test_every_metric_the_dashboard_queries_is_in_a_real_scrape(scrape: dict[str, set[str]]) -> None:
    checked: set[str] = set()
    for title, expr, legend in queries(dashboard()):
        metrics, labels = parse(expr)
        assert metrics, f"{title}: {expr!r} queries no metric"
        missing = sorted(m for m in metrics if m not in scrape)
        assert not missing, f"{title}: {missing} not in /metrics"
        known = set().union(*(scrape[m] for m in metrics)) | TARGET_LABELS
        legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))
        unknown = sorted((labels | legend_labels) - known)
        assert not unknown, f"{title}: labels {unknown} are on none of {sorted(metrics)}"
        checked |= metrics
    # The panels the dashboard promises, by the metrics that draw them.
    assert {
        "ml_worker_http_requests_total",
        "ml_worker_http_request_duration_seconds_bucket",
        "ml_worker_jobs_finished_total",
        "ml_worker_job_duration_seconds_bucket",
        "ml_worker_jobs_running",
        "ml_worker_job_queue_depth",
        "ml_worker_training_duration_seconds_bucket",
        "process_resident_memory_bytes",
        "ml_worker_compute_process_resident_memory_bytes",
    } <= checked
    # What a job and a training leave behind: the labels the panels group by.
    assert {"type", "status", "code"} <= scrape["ml_worker_jobs_finished_total"]
    assert "outcome" in scrape["ml_worker_training_duration_seconds_count"]
