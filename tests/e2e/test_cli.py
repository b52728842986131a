"""The offline CLI (`ml-worker train-gbm|segment|policies|content`) run as a user runs it: the
installed console script in a subprocess, on small CSV and Parquet files with a known signal.

Each command runs once per module (start-up imports the ML libraries, seconds on a busy machine)
and several tests read its outputs. One run uses the default process pool; the others `--inline`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from adapters.compute.inline_runner import InlineRunner
from adapters.inline.dataset_source import InlineDatasetSource
from application.job_executor import INTERNAL
from application.ports import JobScheduler
from application.segment_customers import SegmentCustomers
from domain.data import InlineColumns
from domain.errors import InsufficientData, InternalFailure, WorkerError, field_error
from domain.gbm.scorer import load_model
from domain.jobs import Job
from domain.segmentation import SegmentationSpec
from entrypoints.cli import build_parser
from entrypoints.cli.offline import write_json
from entrypoints.cli.progress import Progress
from entrypoints.cli.runs import analysed
from entrypoints.presenters.jobs import JOB_NAMES, JobResultPresenter
from entrypoints.presenters.wire import WireNames
from support.clock import FakeClock

CLI = str(Path(sys.executable).parent / "ml-worker")
BLOB_CENTERS = ((20.0, 25.0), (85.0, 50.0), (40.0, 70.0))
BLOB_SIZE = 120


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_cli(args: Sequence[str], cwd: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_WORKER_") and k != "DATABASE_URL"}
    env["ML_WORKER_CPU_LIMIT"] = "1"  # a good neighbour on a shared machine
    done = subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    return Run(done.returncode, done.stdout, done.stderr)


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


# ------------------------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def training_csv(workdir: Path) -> Path:
    """y depends on x1 (up), x2 (down) and region; `noise` carries nothing."""
    rng = np.random.default_rng(11)
    n = 1200
    x1, x2, noise = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    region = rng.choice(["north", "south", "east"], size=n)
    logit = 2.5 * x1 - 1.5 * x2 + np.where(region == "north", 1.0, -0.5)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    path = workdir / "customers.csv"
    pl.DataFrame(
        {"id": np.arange(n), "x1": x1, "x2": x2, "noise": noise, "region": region, "converted": y}
    ).write_csv(path)
    return path


@pytest.fixture(scope="module")
def blobs_parquet(workdir: Path) -> Path:
    rng = np.random.default_rng(5)
    points = np.vstack([rng.normal(center, 3.0, size=(BLOB_SIZE, 2)) for center in BLOB_CENTERS])
    path = workdir / "blobs.parquet"
    pl.DataFrame({"income": points[:, 0], "age": points[:, 1], "name": ["c"] * len(points)}).write_parquet(
        path
    )
    return path


@pytest.fixture(scope="module")
def interactions_csv(workdir: Path) -> Path:
    """An interaction log with the caller's own column names: user, medium, ts, event."""
    rng = np.random.default_rng(3)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows: list[tuple[str, str, str, str]] = []
    for customer in range(250):
        for week in range(6):
            for _ in range(int(rng.integers(1, 9))):
                at = start + timedelta(days=7 * week + float(rng.uniform(0, 6)))
                channel = str(rng.choice(["email", "sms"]))
                stamp = at.isoformat().replace("+00:00", "Z")
                rows.append((f"u{customer}", channel, stamp, "impression"))
                if rng.random() < 0.25:
                    rows.append((f"u{customer}", channel, (at + timedelta(minutes=5)).isoformat(), "click"))
                    if rng.random() < 0.3:
                        later = (at + timedelta(minutes=20)).isoformat()
                        rows.append((f"u{customer}", channel, later, "conversion"))
    path = workdir / "interactions.csv"
    pl.DataFrame(rows, schema=["user", "medium", "ts", "event"], orient="row").write_csv(path)
    return path


@pytest.fixture(scope="module")
def creatives_csv(workdir: Path) -> Path:
    """Creatives whose click-through rate doubles when the subject says `free`."""
    rng = np.random.default_rng(9)
    words = ["spring", "news", "update", "offer", "today", "team", "guide", "tips", "week", "story"]
    rows = []
    for i in range(240):
        has_free = i % 3 == 0
        subject = " ".join(rng.choice(words, size=4)) + (" free gift" if has_free else "")
        channel = "email" if i % 2 else "push"
        impressions = int(rng.integers(3_000, 8_000))
        clicks = int(rng.binomial(impressions, 0.04 if has_free else 0.02))
        rows.append((f"c{i}", channel, subject, impressions, clicks, int(rng.binomial(clicks, 0.1))))
    path = workdir / "creatives.csv"
    pl.DataFrame(
        rows, schema=["id", "channel", "subject", "impressions", "clicks", "conversions"], orient="row"
    ).write_csv(path)
    return path


# ------------------------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def trained(workdir: Path, training_csv: Path) -> Run:
    return run_cli(
        [
            "train-gbm",
            training_csv.name,
            "--label",
            "converted",
            "--categorical",
            "region",
            "--params",
            '{"numIterations": 60, "numLeaves": 15}',
            "--out",
            "model.json",
            "--result",
            "training.json",
            "--inline",
        ],
        workdir,
    )


@pytest.fixture(scope="module")
def segmented(workdir: Path, blobs_parquet: Path) -> Run:
    # The default compute: a worker process, as the service runs it.
    return run_cli(["segment", blobs_parquet.name, "--max-clusters", "6", "--out", "segments.json"], workdir)


def test_train_gbm_writes_a_model_state_that_scores_the_file(workdir: Path, trained: Run) -> None:
    assert trained.returncode == 0, trained.stderr
    state = json.loads((workdir / "model.json").read_text())
    assert state["feature_names"] and len(state["trees"]) == 60
    frame = pl.read_csv(workdir / "customers.csv")
    model = load_model(state)
    scores = [model.score(row).score for row in frame.iter_rows(named=True)]
    labels = frame["converted"].to_list()
    assert auc(labels, scores) > 0.8
    # The signal's direction: raising x1 raises the score, raising x2 lowers it.
    base = {"x1": 0.0, "x2": 0.0, "noise": 0.0, "region": "south"}
    assert model.score({**base, "x1": 1.5}).score > model.score(base).score
    assert model.score({**base, "x2": 1.5}).score < model.score(base).score


def test_train_gbm_result_is_the_api_response(workdir: Path, trained: Run) -> None:
    assert trained.returncode == 0, trained.stderr
    response = json.loads((workdir / "training.json").read_text())
    expected = {"modelState", "metrics", "featureImportance", "durationMs", "library", "warnings"}
    assert set(response) >= expected
    assert response["modelState"] == json.loads((workdir / "model.json").read_text())
    metrics = response["metrics"]
    assert metrics["auc"] > 0.8
    assert metrics["evaluatedOn"] == "validation"
    assert metrics["trainingSamples"] + metrics["validationSamples"] == 1200
    # `id` is never a feature (the API's default idField); the label neither.
    fields = [f["field"] for f in response["featureImportance"]]
    assert sorted(fields) == ["noise", "region", "x1", "x2"]
    assert fields[0] == "x1"


def test_train_gbm_summary(trained: Run) -> None:
    assert trained.returncode == 0, trained.stderr
    out = trained.stdout
    assert "trained 60 trees on 960 rows; metrics on 240 validation rows" in out
    auc_text = out.split("AUC ", 1)[1].split()[0]
    assert float(auc_text) > 0.8
    assert "top features: x1 " in out
    assert "wrote model.json, training.json (full result)" in out


def test_segment_finds_the_blobs_in_a_worker_process(workdir: Path, segmented: Run) -> None:
    assert segmented.returncode == 0, segmented.stderr
    result = json.loads((workdir / "segments.json").read_text())
    assert result["k"] == len(BLOB_CENTERS)
    assert result["fieldsUsed"] == ["income", "age"]  # numeric fields only, as the API's default
    assert result["rowCount"] == BLOB_SIZE * len(BLOB_CENTERS)
    assert sorted(s["size"] for s in result["segments"]) == [BLOB_SIZE] * len(BLOB_CENTERS)
    centroids = sorted((s["centroid"]["income"], s["centroid"]["age"]) for s in result["segments"])
    for (income, age), (cx, cy) in zip(centroids, sorted(BLOB_CENTERS), strict=True):
        assert abs(income - cx) < 2 and abs(age - cy) < 2
    assert [c["k"] for c in result["candidates"]] == [2, 3, 4, 5, 6]
    lines = segmented.stdout.splitlines()
    assert lines[0].startswith(f"kmeans: k=3, silhouette {result['silhouette']:.3f}, 360 rows")
    for segment in result["segments"]:
        assert any(segment["name"] in line and f"{segment['size']}" in line for line in lines[1:4])


def test_policies_with_a_field_map_and_caps(workdir: Path, interactions_csv: Path) -> None:
    run = run_cli(
        [
            "policies",
            interactions_csv.name,
            "--inline",
            "--out",
            "policies.json",
            "--field-map",
            '{"customerId": "user", "channel": "medium", "timestamp": "ts", "interactionType": "event"}',
            "--caps",
            '{"daily": 2, "weekly": 6, "monthly": 20}',
            "--min-samples-per-band",
            "20",
        ],
        workdir,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads((workdir / "policies.json").read_text())
    assert result["summary"]["rows"] == len(pl.read_csv(interactions_csv))
    assert {c["channel"] for c in result["channels"]} == {"email", "sms"}
    cap = result["recommendedWeeklyCap"]
    assert cap is None or 1 <= cap <= 6  # never above the configured cap
    assert result["recommendations"]
    for recommendation in result["recommendations"]:
        assert recommendation["type"] == "policy" and recommendation["title"]
        assert recommendation["title"] in run.stdout
    assert f"recommended weekly cap: {cap}" in run.stdout


def test_content_on_creatives(workdir: Path, creatives_csv: Path) -> None:
    run = run_cli(
        [
            "content",
            creatives_csv.name,
            "--inline",
            "--text-fields",
            "subject",
            "--field-map",
            '{"revenue": null}',
            "--out",
            "content.json",
        ],
        workdir,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads((workdir / "content.json").read_text())
    terms = result["topTerms"]
    assert terms and all({"term", "importance", "direction"} <= set(t) for t in terms)
    planted = next(t for t in terms if "free" in t["term"])
    assert planted["direction"] == "helps"
    assert {c["channel"] for c in result["channelSummary"]} == {"email", "push"}
    assert f"+ {planted['term']}" in run.stdout


def test_segment_takes_every_request_field_and_echoes_the_ids(workdir: Path, blobs_parquet: Path) -> None:
    run = run_cli(
        [
            "segment", blobs_parquet.name, "--inline", "--silhouette-sample-size", "150",
            "--max-categories", "2", "--schema-id", "s-1", "--tenant-id", "t-1", "--out", "echo.json",
        ],
        workdir,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads((workdir / "echo.json").read_text())
    assert result["parameters"]["silhouetteSampleSize"] == 150
    assert (result["schemaId"], result["tenantId"]) == ("s-1", "t-1")  # as /status returns them


def test_policies_without_a_recommendation_prints_the_notes_that_say_why(
    workdir: Path, interactions_csv: Path
) -> None:
    # No band has 100,000 customer-weeks: nothing is recommended, and the notes say why.
    run = run_cli(
        [
            "policies", interactions_csv.name, "--inline", "--out", "no-cap.json", "--alpha", "0.01",
            "--min-samples-per-band", "100000",
            "--field-map", '{"customerId": "user", "channel": "medium", "timestamp": "ts", '
            '"interactionType": "event"}',
        ],
        workdir,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads((workdir / "no-cap.json").read_text())
    assert result["recommendedWeeklyCap"] is None and result["notes"]
    lines = run.stdout.splitlines()
    notes_at = lines.index("notes:")
    assert lines[notes_at + 1 : notes_at + 1 + len(result["notes"])] == [f"  - {n}" for n in result["notes"]]


# ----------------------------------------------------------------------------------------- errors


def assert_one_line_error(run: Run, code: str, *needles: str) -> None:
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: {code}: ")
    for needle in needles:
        assert needle in lines[0]
    assert run.stdout == ""


def test_missing_file(workdir: Path) -> None:
    run = run_cli(["segment", "nowhere.csv", "--out", "never.json"], workdir)
    assert_one_line_error(run, "VALIDATION_ERROR", "'nowhere.csv' does not exist")
    assert not (workdir / "never.json").exists()


def test_train_gbm_calibrated_with_cross_validation(workdir: Path, training_csv: Path) -> None:
    args = ["train-gbm", training_csv.name, "--label", "converted", "--categorical", "region"]
    options = ["--calibration", "platt", "--cv-folds", "3", "--params", '{"numIterations": 20}']
    run = run_cli(
        [*args, *options, "--out", "calibrated.json", "--result", "calibrated-result.json", "--inline"],
        workdir,
    )
    assert run.returncode == 0, run.stderr
    state = json.loads((workdir / "calibrated.json").read_text())
    assert state["schema_version"] == 2 and state["calibration"]["method"] == "platt"
    metrics = json.loads((workdir / "calibrated-result.json").read_text())["metrics"]
    assert metrics["calibration"]["fittedOn"] == metrics["validationSamples"] == 240
    assert metrics["crossValidation"]["folds"] == 3
    assert "calibrated (platt, fitted on 240 held-out rows): ECE " in run.stdout
    assert "cross-validated over 3 folds: AUC " in run.stdout


def test_train_gbm_without_reference_is_a_version_1_model(workdir: Path, training_csv: Path) -> None:
    args = ["train-gbm", training_csv.name, "--label", "converted", "--no-reference"]
    run = run_cli([*args, "--params", '{"numIterations": 5}', "--out", "plain.json", "--inline"], workdir)
    assert run.returncode == 0, run.stderr
    state = json.loads((workdir / "plain.json").read_text())
    assert state["schema_version"] == 1 and "reference" not in state


def test_two_cv_folds_are_named_by_the_flag(workdir: Path, training_csv: Path) -> None:
    args = ["train-gbm", training_csv.name, "--label", "converted", "--cv-folds", "2", "--inline"]
    run = run_cli([*args, "--out", "never.json"], workdir)
    assert_one_line_error(run, "VALIDATION_ERROR", "cvFolds")
    assert not (workdir / "never.json").exists()


def test_unknown_label(workdir: Path, training_csv: Path) -> None:
    args = ["train-gbm", training_csv.name, "--label", "bought", "--out", "never.json", "--inline"]
    run = run_cli(args, workdir)
    assert_one_line_error(run, "VALIDATION_ERROR", "'bought'")
    assert not (workdir / "never.json").exists()


def test_an_option_out_of_the_api_range_is_named_by_its_flag(workdir: Path, blobs_parquet: Path) -> None:
    run = run_cli(["segment", blobs_parquet.name, "--min-clusters", "1", "--out", "never.json"], workdir)
    assert_one_line_error(run, "VALIDATION_ERROR", "--min-clusters", "greater than or equal to 2")


def test_a_failed_computation_reads_as_the_failed_job_reports_it(workdir: Path, blobs_parquet: Path) -> None:
    # The analysis runs without the job engine, but its failure reads as /status reports it: the
    # code and the message, in one line.
    args = ["segment", blobs_parquet.name, "--algorithm", "dbscan", "--eps", "0.00001", "--inline"]
    run = run_cli([*args, "--out", "never.json"], workdir)
    assert_one_line_error(run, "INSUFFICIENT_DATA", "DBSCAN found no cluster", "raise eps")
    assert not (workdir / "never.json").exists()


def test_bad_json_option_lists_every_problem(workdir: Path, training_csv: Path) -> None:
    run = run_cli(
        [
            "train-gbm",
            training_csv.name,
            "--label",
            "converted",
            "--params",
            '{"numLeaves": 1, "leaves": 3}',
            "--out",
            "never.json",
        ],
        workdir,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.splitlines() == [
        "error: VALIDATION_ERROR: --params numLeaves: Input should be greater than or equal to 2",
        "  --params leaves: Extra inputs are not permitted",
    ]


# ---------------------------------------------------------------------------------------- in-process


def test_every_offline_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train-gbm", "segment", "policies", "content"):
        with pytest.raises(SystemExit) as exited:
            build_parser().parse_args([command, "--help"])
        assert exited.value.code == 0
        text = capsys.readouterr().out
        assert f"ml-worker {command} " in text.split("examples:", 1)[1]
        assert "--out PATH" in text


def test_progress_on_a_terminal_redraws_one_bar() -> None:
    stream, clock = io.StringIO(), FakeClock(start=0.0)
    progress = Progress("segment", stream, tty=True, clock=clock.now)
    progress.update(0.5, "Fitted k=3")
    clock.advance(1.0)
    progress.update(None, "training")
    progress.close()
    text = stream.getvalue()
    assert "\n" not in text  # redrawn in place
    first = text.split("\r")[1]
    assert first.startswith("segment [" + "#" * 15 + "-" * 15 + "]  50%")
    assert "Fitted k=3" in first
    assert text.endswith("\r\x1b[K")  # the bar is cleared before the summary


def test_progress_in_a_log_prints_occasional_lines() -> None:
    stream, clock = io.StringIO(), FakeClock(start=0.0)
    progress = Progress("segment", stream, tty=False, clock=clock.now)
    for step in range(1, 21):  # 5% steps, one second apart
        clock.advance(1.0)
        progress.update(step / 20, f"step {step}")
    progress.close()
    lines = stream.getvalue().splitlines()
    # One line per quarter reached (and none between), never a carriage return.
    assert lines == [
        "segment: 25% (5 s) step 5",
        "segment: 50% (10 s) step 10",
        "segment: 75% (15 s) step 15",
        "segment: 100% (20 s) step 20",
    ]
    quiet = io.StringIO()
    waiting = Progress("train-gbm", quiet, tty=False, clock=clock.now)
    clock.advance(25.0)
    waiting.update(None, "training")
    waiting.update(None, "training")
    assert quiet.getvalue() == "train-gbm: running (25 s) training\n"


def test_cli_result_json_keeps_full_float_precision(tmp_path: Path) -> None:
    value: dict[str, Any] = {"threshold": 0.1 + 0.2, "leaf": -1.2345678901234567e-7}
    target = tmp_path / "out.json"
    write_json(target, value)
    assert json.loads(target.read_text()) == value
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no partial file left


class _NoScheduling(JobScheduler):
    async def submit(self, job_type: str, task: Callable[..., object], *args: Any) -> Job:
        raise AssertionError("the CLI runs analyses directly")

    def cancel_local(self, job_id: str) -> None:
        raise AssertionError("the CLI runs analyses directly")


class _FailingSegmenter:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def segment(self, dataset: Any, spec: Any, progress: Callable[..., None]) -> dict[str, Any]:
        raise self.error


@pytest.mark.parametrize(
    ("raised", "shown"),
    [
        (
            InsufficientData("no cluster; lower `min_samples`", [field_error("eps", "too small")]),
            InsufficientData("no cluster; lower minSamples"),
        ),
        (RuntimeError("a bug's own words"), InternalFailure(INTERNAL.message)),
    ],
)
async def test_a_failed_local_run_reads_as_the_failed_job(
    monkeypatch: pytest.MonkeyPatch, raised: Exception, shown: WorkerError
) -> None:
    """As /status reports it: the code and the message in the request's names, no details; an
    unexpected error's own words only in the log."""
    monkeypatch.setitem(JOB_NAMES, "segmentation", WireNames(SegmentationSpec))
    segmenter = _FailingSegmenter(raised)
    use_case = SegmentCustomers(InlineDatasetSource(), _NoScheduling(), InlineRunner(), segmenter, 100, 60)
    data = InlineColumns({"a": [float(i) for i in range(20)]})
    progress = Progress("segment", io.StringIO(), tty=False)
    with pytest.raises(WorkerError) as caught:
        names = WireNames(SegmentationSpec)
        await analysed(use_case, SegmentationSpec(), data, JobResultPresenter(), progress, names)
    assert type(caught.value) is type(shown)
    assert (caught.value.message, caught.value.details) == (shown.message, [])


def test_drift_against_the_trained_model_takes_a_whole_training_answer(workdir: Path, trained: Run) -> None:
    # The training file itself: nothing drifted. --result's whole answer holds the model it needs.
    run = run_cli(
        ["drift", "customers.csv", "--model", "training.json", "--label", "converted", "--out", "drift.json",
         "--inline"],
        workdir,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("drift of 1200 rows: 0 of 4 fields drifted")
    result = json.loads((workdir / "drift.json").read_text())
    assert {item["status"] for item in result["fields"]} == {"stable"}
    assert result["performance"]["training"]["auc"] is not None


def test_drift_names_a_model_file_that_is_not_there(workdir: Path, training_csv: Path) -> None:
    run = run_cli(["drift", training_csv.name, "--model", "nowhere.json", "--out", "never.json"], workdir)
    assert_one_line_error(run, "VALIDATION_ERROR", "--model", "'nowhere.json' does not exist")
