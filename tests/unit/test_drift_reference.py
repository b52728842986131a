"""The drift reference's pure rules: buckets, PSI (by hand), KS at the edges, status bands, checks."""

from __future__ import annotations

import math

import pytest

from domain.gbm.model_state import UnsupportedModel
from domain.gbm.reference import (
    DRIFTED,
    STABLE,
    WATCH,
    binned_ks,
    drift_status,
    expected_shares,
    field_buckets,
    measure,
    numeric_bin,
    psi,
    validate_reference,
)

INCOME = {
    "name": "income",
    "kind": "numeric",
    "edges": [10.0, 20.0],
    "shares": [0.3, 0.4, 0.2],
    "missing_share": 0.1,
}
REGION = {
    "name": "region",
    "kind": "categorical",
    "categories": ["north", "3"],
    "shares": [0.5, 0.3],
    "other_share": 0.15,
    "missing_share": 0.05,
}
INPUTS = [
    {"name": "income", "kind": "numeric"},
    {"name": "region", "kind": "categorical", "encoding": "onehot", "categories": ["north", "3"]},
]
SCORE = {"rows": 4, "source": "validation", "edges": [0.5], "shares": [0.5, 0.5]}


def reference(**changes: object) -> dict[str, object]:
    block: dict[str, object] = {"rows": 10, "fields": [dict(INCOME), dict(REGION)], "score": dict(SCORE)}
    block.update(changes)
    return block


def test_a_numeric_bin_is_right_closed_and_infinities_fall_in_the_end_bins() -> None:
    edges = [10.0, 20.0]
    assert [numeric_bin(edges, v) for v in (-math.inf, 9.0, 10.0, 10.5, 20.0, 20.1, math.inf)] == [
        0,
        0,
        0,
        1,
        1,
        2,
        2,
    ]


def test_buckets_count_missing_other_and_category_keys_as_the_scorer_reads_them() -> None:
    assert field_buckets(INCOME, [None, math.nan, "NaN", 5, 10, True, 15.0, 25, "Infinity"]) == [3, 1, 2, 3]
    # 3 and 3.0 are the category "3"; an unrecorded value and a non-integral number are "other".
    assert field_buckets(REGION, ["north", 3, 3.0, "south", 2.5, None]) == [1, 2, 2, 1]


def test_psi_equals_a_hand_computation_with_the_epsilon_for_an_empty_bin() -> None:
    # Reference [0.3, 0.4, 0.2, 0.1]; batch of 10: [5, 5, 0, 0] -> [0.5, 0.5, 1e-4, 1e-4].
    by_hand = (
        (0.5 - 0.3) * math.log(0.5 / 0.3)
        + (0.5 - 0.4) * math.log(0.5 / 0.4)
        + (1e-4 - 0.2) * math.log(1e-4 / 0.2)
        + (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    )
    assert psi(expected_shares(INCOME), [5, 5, 0, 0]) == pytest.approx(by_hand, rel=1e-15)
    assert psi(expected_shares(INCOME), [3, 4, 2, 1]) == pytest.approx(0.0, abs=1e-15)


def test_ks_is_the_largest_gap_of_the_cumulative_shares_at_the_edges() -> None:
    # Non-missing reference [0.3, 0.4, 0.2] / 0.9 -> CDF at edges 1/3, 7/9; batch [5, 5, 0] -> 0.5, 1.
    assert binned_ks([0.3, 0.4, 0.2], [5, 5, 0]) == pytest.approx(1 - 7 / 9, rel=1e-12)
    assert binned_ks([0.3, 0.4, 0.2], [0, 0, 0]) is None
    assert binned_ks([1.0], [7]) == 0.0


def test_status_bands_are_half_open() -> None:
    assert [drift_status(v) for v in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == [
        STABLE,
        STABLE,
        WATCH,
        WATCH,
        DRIFTED,
        DRIFTED,
    ]


def test_measure_reports_missing_share_change_and_no_ks_for_a_categorical_field() -> None:
    income = measure(INCOME, [3, 4, 1, 2])
    assert income.missing_share_change == pytest.approx(0.1)
    assert income.ks == pytest.approx(binned_ks([0.3, 0.4, 0.2], [3, 4, 1]))
    region = measure(REGION, [0, 0, 0, 10])
    assert region.ks is None and region.status == DRIFTED
    assert measure(SCORE, [2, 2]).missing_share_change is None


def test_a_valid_reference_passes_and_each_malformed_one_is_refused_naming_the_problem() -> None:
    validate_reference(reference(), INPUTS)
    bad = {
        "must sum to 1": reference(fields=[{**INCOME, "missing_share": 0.2}, dict(REGION)]),
        "edges must be strictly increasing": reference(
            fields=[{**INCOME, "edges": [20.0, 10.0]}, dict(REGION)]
        ),
        "one share per bin": reference(fields=[{**INCOME, "shares": [0.9]}, dict(REGION)]),
        "categories must equal": reference(fields=[dict(INCOME), {**REGION, "categories": ["north", "x"]}]),
        "one entry per input feature": reference(fields=[dict(INCOME)]),
        "name and kind": reference(fields=[dict(REGION), dict(INCOME)]),
        "score: source": reference(score={**SCORE, "source": "test"}),
        "performance: logloss": reference(performance={"rows": 3, "auc": 0.7, "logloss": None, "ece": 0.1}),
    }
    for words, block in bad.items():
        with pytest.raises(UnsupportedModel, match=words.replace("(", r"\(")):
            validate_reference(block, INPUTS)
