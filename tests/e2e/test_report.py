"""`ml-worker report`: each kind of result, made by the CLI from the examples, becomes one HTML page
with its charts, its figures and nothing loaded from outside."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from entrypoints.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.IGNORECASE)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("report")
    for name in ("customers.csv", "segments.csv", "interactions.csv", "creatives.csv"):
        shutil.copy(EXAMPLES / name, work / name)
    runs = {
        "training": [
            "train-gbm",
            "customers.csv",
            "--label",
            "converted",
            "--out",
            "model.json",
            "--result",
            "training.json",
        ],
        "segments": ["segment", "segments.csv", "--fields", "income,age", "--out", "segments.json"],
        "policies": ["policies", "interactions.csv", "--out", "policies.json"],
        "content": ["content", "creatives.csv", "--text-fields", "subject", "--out", "content.json"],
    }
    paths = {}
    for kind, args in runs.items():
        assert main([*(str(work / a) if a.endswith((".csv", ".json")) else a for a in args), "--inline"]) == 0
        paths[kind] = work / f"{kind}.json"
    return paths


def report(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    out = tmp_path / f"{source.stem}.html"
    assert main(["report", str(source), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert not _EXTERNAL.search(page), "a report must not load anything from outside"
    return page


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_a_training_report_shows_its_metrics_and_feature_importance(
    results: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = load(results["training"])
    page = report(results["training"], tmp_path, capsys)
    assert page.count("<svg") == 3  # ROC, reliability, feature importance
    assert ">false positive rate<" in page and ">mean predicted probability<" in page
    assert f"{result['metrics']['auc']:.3g}" in page
    top = result["featureImportance"][0]["field"]
    assert f">{top}<" in page  # the bar's label, kept as text in the SVG


def test_a_segmentation_report_has_sizes_profiles_and_the_choice_of_k(
    results: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = load(results["segments"])
    page = report(results["segments"], tmp_path, capsys)
    assert page.count("<svg") == 3
    for segment in result["segments"]:
        assert segment["name"] in page
    assert "income" in page and "age" in page


def test_a_policy_report_marks_the_recommended_cap_and_says_why_there_are_few_recommendations(
    results: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = load(results["policies"])
    page = report(results["policies"], tmp_path, capsys)
    assert page.count("<svg") == 2
    assert f"cap {result['recommendedWeeklyCap']}/week" in page
    for note in result["notes"]:
        assert note.split(":")[0] in page


def test_a_content_report_ranks_the_terms(
    results: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = load(results["content"])
    page = report(results["content"], tmp_path, capsys)
    assert page.count("<svg") == 1
    assert result["topTerms"][0]["term"] == "free gift" and "free gift" in page


def test_a_status_document_reports_like_its_result(
    results: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = {
        "jobId": "j1",
        "type": "segmentation",
        "status": "completed",
        "result": load(results["segments"]),
    }
    (tmp_path / "job.json").write_text(json.dumps(status))
    assert report(tmp_path / "job.json", tmp_path, capsys) == report(results["segments"], tmp_path, capsys)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            '{"jobId": "j1", "type": "segmentation", "status": "running", "result": null}',
            "it has no result yet",
        ),
        ('{"some": "json"}', "not a result of the worker"),
        ("[1, 2]", "not an object"),
        ("{nope", "is not JSON"),
    ],
)
def test_what_is_not_a_result_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, words: str
) -> None:
    source = tmp_path / "x.json"
    source.write_text(content)
    assert main(["report", str(source), "--out", str(tmp_path / "x.html")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: VALIDATION_ERROR:") and words in error
    assert not (tmp_path / "x.html").exists()


async def test_a_drift_report_ranks_the_fields_by_psi(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import polars as pl
    from tests.support.app import app_client
    from tests.support.http import finished_job

    customers = pl.read_csv(EXAMPLES / "customers.csv")
    async with app_client() as client:
        trained = await client.post(
            "/train/gbm", json={"data": {"columns": customers.to_dict(as_series=False)}, "label": "converted"}
        )
        assert trained.status_code == 200, trained.text
        north = customers.filter(pl.col("region") == "north").to_dict(as_series=False)
        submitted = await client.post(
            "/analyze/drift", json={"modelState": trained.json()["modelState"], "data": {"columns": north}}
        )
        assert submitted.status_code == 202, submitted.text
        job = await finished_job(client, f"/status/{submitted.json()['jobId']}")
    assert job["status"] == "completed", job
    (tmp_path / "drift.json").write_text(json.dumps(job))
    page = report(tmp_path / "drift.json", tmp_path, capsys)
    assert page.count("<svg") == 1
    region = next(f for f in job["result"]["fields"] if f["field"] == "region")
    assert region["status"] == "drifted" and ">region<" in page
    assert "Retrain: region drifted" in page
