"""The drift analysis: PSI against the model's reference on rows from the training distribution, with
one field shifted, with a categorical field's shares flipped, and on a small case computed by hand;
the vectorised bucket counts against the reference's pure-Python rule; performance on labelled rows;
the request's checks, each naming what is at fault; and the advice drawn from the numbers."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import polars as pl
import pytest

from adapters.compute.inline_runner import InlineRunner
from adapters.drift.analyzer import PolarsDriftAnalyzer
from adapters.drift.buckets import field_counts
from adapters.frames import PolarsDataset
from adapters.gbm.metrics import expected_calibration_error
from adapters.gbm.trainer import LightGbmTrainer
from adapters.inline.dataset_source import InlineDatasetSource
from application.analyze_drift import AnalyzeDrift
from domain.budget import MB, ResourceBudget, ResourceLimitExceeded
from domain.data import ColumnKind, InlineColumns
from domain.drift import DriftAnalysisResult, DriftSpec, validate_drift_spec
from domain.drift.recommendations import build_recommendations
from domain.drift.result import FieldDrift, Metrics, Performance, ScoreDrift
from domain.errors import ValidationFailed
from domain.gbm.reference import field_buckets
from domain.gbm.training import GbmParams, GbmTrainingSpec, plan_features
from domain.jobs import RequestEcho
from domain.progress import no_progress
from support.drift import with_reference

REGIONS = ["north", "south", "east"]


def customers(
    n: int, seed: int, *, income_shift: float = 0.0, regions: list[float] | None = None
) -> pl.DataFrame:
    """income ~ N(50, 10) (shifted by `income_shift` standard deviations), age ~ N(40, 12), region
    north/south/east at 0.5/0.3/0.2; the outcome depends on all three."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 10, n) + income_shift * 10
    age = rng.normal(40, 12, n)
    region = rng.choice(REGIONS, n, p=regions or [0.5, 0.3, 0.2])
    logit = 0.08 * (income - 50) + 0.03 * (age - 40) + np.where(region == "north", 0.5, -0.3)
    converted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pl.DataFrame({"income": income, "age": age, "region": region, "converted": converted})


@functools.cache
def model_state() -> dict[str, Any]:
    frame = customers(3000, seed=1)
    spec = GbmTrainingSpec(label="converted", id_field=None, params=GbmParams(num_iterations=30))
    dataset = PolarsDataset(frame)
    outcome = LightGbmTrainer(num_threads=1).train(
        dataset, spec, plan_features(spec, dataset.schema), no_progress
    )
    rows = frame.to_dicts()
    performance = {"rows": 600, "auc": 0.99, "logloss": 0.2, "ece": 0.01}  # a model far better than this one
    return with_reference(outcome.model_state, rows, rows[:600], performance)


def analyse(frame: pl.DataFrame, **spec: Any) -> DriftAnalysisResult:
    given = DriftSpec(**({"model_state": model_state()} | spec))
    validate_drift_spec(given, PolarsDataset(frame).schema)
    return PolarsDriftAnalyzer().analyze(PolarsDataset(frame), given, no_progress)


def by_field(result: DriftAnalysisResult) -> dict[str, FieldDrift]:
    return {item.field: item for item in result.fields}


def test_a_batch_from_the_training_distribution_is_stable_everywhere() -> None:
    reports: list[float] = []
    frame = customers(3000, seed=2)
    result = PolarsDriftAnalyzer().analyze(
        PolarsDataset(frame), DriftSpec(model_state=model_state()), lambda f, m="": reports.append(f)
    )
    assert reports == sorted(reports) and reports[-1] >= 0.95 and len(reports) > 3
    assert [item.field for item in result.fields] == ["income", "age", "region"]
    assert all(item.psi < 0.1 and item.status == "stable" for item in result.fields), result.fields
    assert result.score is not None and result.score.psi < 0.1 and result.score.status == "stable"
    assert result.recommendations == ()


def test_a_field_shifted_by_one_standard_deviation_drifts_and_the_others_stay_stable() -> None:
    result = analyse(customers(3000, seed=2, income_shift=1.0))
    fields = by_field(result)
    assert fields["income"].status == "drifted" and fields["income"].psi >= 0.25
    assert fields["income"].ks is not None and fields["income"].ks > 0.2
    assert (fields["age"].status, fields["region"].status) == ("stable", "stable")
    assert result.score is not None and result.score.status == "drifted"  # income moves the score
    first = result.recommendations[0]
    assert (first.action, first.title) == (
        "retrain",
        f"Retrain: income drifted, PSI {fields['income'].psi:.2f}",
    )


def test_a_categorical_field_whose_shares_flip_drifts() -> None:
    result = analyse(customers(3000, seed=2, regions=[0.2, 0.3, 0.5]))
    fields = by_field(result)
    assert fields["region"].status == "drifted" and fields["region"].ks is None
    assert (fields["income"].status, fields["age"].status) == ("stable", "stable")


# A reference of one numeric and one categorical field, and ten rows counted into it by hand.
SMALL_REFERENCE: dict[str, Any] = {
    "rows": 1000,
    "fields": [
        {
            "name": "x",
            "kind": "numeric",
            "edges": [1.0, 2.0],
            "shares": [0.5, 0.3, 0.1],
            "missing_share": 0.1,
        },
        {
            "name": "c",
            "kind": "categorical",
            "categories": ["a", "b"],
            "shares": [0.6, 0.2],
            "other_share": 0.1,
            "missing_share": 0.1,
        },
    ],
    "score": {"rows": 200, "source": "validation", "edges": [0.5], "shares": [0.5, 0.5]},
}
SMALL_ROWS = pl.DataFrame(
    {
        # bins: v <= 1 | 1 < v <= 2 | v > 2 (inf included) | missing (null, NaN) -> 2, 2, 4, 2 rows
        "x": pl.Series([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 40.0, math.inf, None, math.nan], dtype=pl.Float64),
        # a: 5, b: 0 (an empty bucket), other: 3, missing: 2
        "c": ["a", "a", "a", "a", "a", "z", "y", "A", None, None],
    }
)


def test_psi_ks_and_the_missing_share_equal_a_hand_computation() -> None:
    result = analyse(SMALL_ROWS, model_state=None, reference=SMALL_REFERENCE)
    x, c = result.fields
    # x: actual shares 0.2, 0.2, 0.4, 0.2 against 0.5, 0.3, 0.1, 0.1.
    psi_x = (
        (0.2 - 0.5) * math.log(0.2 / 0.5)
        + (0.2 - 0.3) * math.log(0.2 / 0.3)
        + (0.4 - 0.1) * math.log(0.4 / 0.1)
        + (0.2 - 0.1) * math.log(0.2 / 0.1)
    )
    assert x.psi == pytest.approx(psi_x, abs=1e-12) and x.status == "drifted"
    # Cumulative shares at the two edges, over the non-missing values: reference 0.5/0.9, 0.8/0.9;
    # the rows 2/8, 4/8.
    assert x.ks == pytest.approx(max(abs(0.5 / 0.9 - 2 / 8), abs(0.8 / 0.9 - 4 / 8)), abs=1e-12)
    assert x.missing_share_change == pytest.approx(0.2 - 0.1, abs=1e-12)
    # c: actual 0.5, 0 (counts as 1e-4), 0.3, 0.2 against 0.6, 0.2, 0.1, 0.1.
    psi_c = (
        (0.5 - 0.6) * math.log(0.5 / 0.6)
        + (1e-4 - 0.2) * math.log(1e-4 / 0.2)
        + (0.3 - 0.1) * math.log(0.3 / 0.1)
        + (0.2 - 0.1) * math.log(0.2 / 0.1)
    )
    assert c.psi == pytest.approx(psi_c, abs=1e-12) and c.ks is None
    # A reference alone has no trees: no score, no performance, and a note that says why.
    assert result.score is None and result.performance is None
    assert any("no trees to score with" in note for note in result.notes)


def test_vectorised_counts_equal_the_references_pure_rule() -> None:
    numeric = {
        "name": "v",
        "kind": "numeric",
        "edges": [-1.0, 0.0, 2.5],
        "shares": [0.25] * 4,
        "missing_share": 0.0,
    }
    values = [-math.inf, -1.0, -0.5, -0.0, 0.0, 1e-300, 2.5, 2.5000001, math.inf, None, math.nan, 7.0]
    column = pl.Series("v", values, dtype=pl.Float64)
    assert field_counts(numeric, column) == field_buckets(numeric, column.to_list()) == [2, 3, 2, 3, 2]
    booleans = pl.Series("v", [True, False, None, True])
    assert field_counts(numeric, booleans) == field_buckets(numeric, booleans.to_list())
    categorical = {
        "name": "k",
        "kind": "categorical",
        "categories": ["3", "true", "x"],
        "shares": [0.25, 0.25, 0.25],
        "other_share": 0.25,
        "missing_share": 0.0,
    }
    for series in (
        pl.Series("k", [3, 4, None, 3, -3]),
        pl.Series("k", [3.0, 3.5, math.nan, None]),
        pl.Series("k", [True, False, None]),
        pl.Series("k", ["x", "3", "X", None, ""]),
        pl.Series("k", ["x", "3", None], dtype=pl.Categorical),
    ):
        assert field_counts(categorical, series) == field_buckets(categorical, series.to_list()), series


def test_performance_is_measured_on_the_labelled_rows_against_training() -> None:
    frame = customers(2000, seed=3)
    labels = frame.get_column("converted").to_list()
    unlabelled = frame.with_columns(
        pl.Series("converted", [None if i % 4 == 0 else v for i, v in enumerate(labels)])
    )
    result = analyse(unlabelled, label="converted")
    assert result.performance is not None and result.performance.rows == 1500
    assert result.performance.training == Metrics(auc=0.99, logloss=0.2, ece=0.01)
    assert result.performance.metrics.auc is not None and 0.6 < result.performance.metrics.auc < 0.9
    assert any("500 row(s) without a `label` value" in note for note in result.notes)
    # The reference claims an AUC of 0.99: far more than 0.05 above this model's on new rows.
    decay = [r for r in result.recommendations if r.title.startswith("Retrain: AUC fell from 0.990")]
    assert len(decay) == 1 and decay[0].evidence.rows == 1500  # type: ignore[union-attr]


def test_the_expected_calibration_error_is_formats_ten_bins() -> None:
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    p = np.array([0.05, 0.15, 0.95, 0.85, 1.0, 0.11])
    # bins 0: {0.05}; 1: {0.15, 0.11}; 8: {0.85}; 9: {0.95, 1.0} (1.0 falls in the last bin)
    expected = (1 * 0.05 + 2 * abs(1.0 - 0.13) + 1 * 0.85 + 2 * abs(1.0 - 0.975)) / 6
    assert expected_calibration_error(y, p) == pytest.approx(expected, abs=1e-12)


SCHEMA = {"x": ColumnKind.NUMERIC, "c": ColumnKind.CATEGORICAL, "y": ColumnKind.NUMERIC}


def refusal(spec: DriftSpec, schema: dict[str, ColumnKind] | None = None) -> list[str]:
    with pytest.raises(ValidationFailed) as refused:
        validate_drift_spec(spec, SCHEMA if schema is None else schema)
    return [detail["field"] for detail in refused.value.details]


def test_the_request_checks_name_what_is_at_fault() -> None:
    state = model_state()
    assert refusal(DriftSpec()) == ["model_state"]
    assert refusal(DriftSpec(model_state=state, reference=SMALL_REFERENCE)) == ["model_state"]
    assert refusal(DriftSpec(reference=SMALL_REFERENCE), {"x": ColumnKind.NUMERIC}) == ["c"]
    assert refusal(DriftSpec(reference=SMALL_REFERENCE), {**SCHEMA, "x": ColumnKind.CATEGORICAL}) == ["x"]
    assert refusal(DriftSpec(reference=SMALL_REFERENCE, label="converted")) == ["label"]
    validate_drift_spec(DriftSpec(reference=SMALL_REFERENCE, label="y"), {**SCHEMA, "x": ColumnKind.BOOLEAN})


def test_a_model_or_reference_that_fails_its_own_checks_is_named_within_the_request() -> None:
    state = model_state()
    plain = {key: value for key, value in state.items() if key != "reference"}
    assert refusal(DriftSpec(model_state=plain), {}) == ["model_state.content_hash"]
    tampered = {**state, "sigmoid": 2.0}
    assert refusal(DriftSpec(model_state=tampered), {}) == ["model_state.sigmoid"]
    unbalanced = {**SMALL_REFERENCE, "score": {**SMALL_REFERENCE["score"], "shares": [0.5, 0.6]}}
    assert refusal(DriftSpec(reference=unbalanced)) == ["reference"]
    assert refusal(DriftSpec(reference={**SMALL_REFERENCE, "fields": []})) == ["reference"]


def drift(field: str, psi: float, status: str) -> FieldDrift:
    return FieldDrift(field=field, kind="numeric", psi=psi, ks=0.1, missing_share_change=0.0, status=status)  # type: ignore[arg-type]


def performance(auc: float, training_auc: float | None) -> Performance:
    training = None if training_auc is None else Metrics(auc=training_auc, logloss=0.4, ece=0.01)
    return Performance(rows=4000, metrics=Metrics(auc=auc, logloss=0.5, ece=0.02), training=training)


def test_recommendations_retrain_for_drift_and_auc_decay_and_watch_the_rest() -> None:
    fields = [drift("age", 0.12, "watch"), drift("tenure", 0.4, "drifted"), drift("income", 0.31, "drifted")]
    advice = build_recommendations(
        fields, ScoreDrift(psi=0.3, ks=0.2, status="drifted"), performance(0.74, 0.81)
    )
    assert [(a.action, a.title) for a in advice] == [
        ("retrain", "Retrain: tenure drifted, PSI 0.40"),
        ("retrain", "Retrain: income drifted, PSI 0.31"),
        ("retrain", "Retrain: the score distribution drifted, PSI 0.30"),
        ("retrain", "Retrain: AUC fell from 0.810 to 0.740"),
        ("watch", "Watch: age shifted, PSI 0.12"),
    ]
    assert advice[3].evidence.change == pytest.approx(-0.07)  # type: ignore[union-attr]
    # A fall of 0.05 or less is not decay; nor is anything without a training figure.
    assert build_recommendations([], None, performance(0.77, 0.81)) == ()
    assert build_recommendations([], None, performance(0.5, None)) == ()
    assert build_recommendations([drift("age", 0.05, "stable")], None, None) == ()


class NoJobs:
    def __init__(self) -> None:
        self.submitted: list[str] = []

    async def submit(self, job_type: str, job_input: object, **options: object) -> object:
        self.submitted.append(job_type)
        return None


async def test_a_batch_beyond_the_memory_budget_is_refused_before_any_job() -> None:
    jobs = NoJobs()
    use_case = AnalyzeDrift(
        InlineDatasetSource(),
        jobs,  # type: ignore[arg-type]
        InlineRunner(queue_limit=1),
        PolarsDriftAnalyzer(),
        max_rows=100_000,
        timeout_seconds=60,
        budget=ResourceBudget(memory_bytes=33 * MB),
    )
    columns = customers(20_000, seed=4).to_dict(as_series=False)
    spec = DriftSpec(model_state=model_state())
    with pytest.raises(ResourceLimitExceeded) as refused:
        await use_case.submit(InlineColumns(columns), spec, RequestEcho())
    assert [detail["field"] for detail in refused.value.details] == ["data"]
    await use_case.submit(InlineColumns({k: v[:100] for k, v in columns.items()}), spec, RequestEcho())
    assert jobs.submitted == ["drift_analysis"]
