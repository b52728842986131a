"""The analyses' arithmetic at the edges of what a frame can hold: doubles near 1.8e308 and 5e-324,
integers past 64 bits, instants past the calendar, whatever the data source (a binary body or a table
can carry infinities and 128-bit integers that JSON cannot)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest

from adapters.content.creatives import _count, exclusion_reasons, read_creatives
from adapters.frames import PolarsDataset
from adapters.policies.timestamps import parse_timestamps
from adapters.segmentation.encoding import _median, encode, original_units
from domain.content import ContentSpec
from domain.content.rates import cvr, safe_rate
from domain.content.result import ExclusionReason
from domain.data import ColumnKind
from domain.errors import COLUMN_DETAIL, ValidationFailed
from domain.policies import PolicySpec
from domain.policies.spec import EARLIEST_INSTANT, END_OF_CALENDAR, validate_policy_spec
from domain.segmentation import SegmentationSpec

# ----------------------------------------------------------------------------- segmentation


def _encoded(values: list[float]) -> tuple[np.ndarray, np.ndarray, list[float]]:
    frame = pl.DataFrame({"x": values, "y": [float(i % 3) for i in range(len(values))]})
    encoded = encode(PolarsDataset(frame), SegmentationSpec(fields=("x", "y")))
    means = [original_units(float(m), int(e)) for m, e in zip(encoded.mean, encoded.exponents, strict=True)]
    return encoded.matrix, encoded.std, means


def test_z_scores_do_not_depend_on_the_units_even_near_the_double_range() -> None:
    rng = np.random.default_rng(1)
    small = rng.normal(size=200).tolist()
    matrix, _, means = _encoded(small)
    for factor in (2.0**1000, 2.0**-1000):  # to ~1e301 and ~1e-301: exact, as powers of two
        scaled_matrix, _, scaled_means = _encoded([v * factor for v in small])
        # Standardising divides by a power of two first, so the model matrix is the same to the bit.
        assert np.array_equal(scaled_matrix, matrix)
        assert scaled_means[0] == means[0] * factor
    # Subnormals: whole multiples of the smallest double, 5e-324, are exact too.
    counts = [float(i % 7) for i in range(200)]
    assert np.array_equal(_encoded([c * 5e-324 for c in counts])[0], _encoded(counts)[0])


def test_the_largest_doubles_standardise_to_finite_z_scores() -> None:
    largest = 1.7976931348623157e308
    matrix, std, means = _encoded([largest, -largest] * 30)
    assert np.isfinite(matrix).all() and (std > 0).all()
    assert np.allclose(np.abs(matrix[:, 0]), 1.0)
    assert means[0] == 0.0


@pytest.mark.parametrize(
    "values", [[1e308, 1.7e308], [1.7e308, 1.7e308, -1e308, 1.5e308], [1.0, 2.0, 3.0, 4.0], [5.0, 1.0, 3.0]]
)
def test_the_imputation_median_is_numpys_but_never_overflows(values: list[float]) -> None:
    with np.errstate(over="ignore"):
        expected = float(np.median(values))
    got = _median(np.array(values))
    assert math.isfinite(got)
    assert got == expected if math.isfinite(expected) else min(values) <= got <= max(values)


# ----------------------------------------------------------------------------- policies


def test_timestamps_outside_years_1_to_9999_are_unparseable_in_any_form() -> None:
    text = pl.Series(
        "t",
        [
            "0000-06-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "10000-01-01T00:00:00Z",
            "2024-01-01T00:00:00Z",
            None,
        ],
    )
    parsed = parse_timestamps(text)
    assert parsed.seconds.to_list() == [None, EARLIEST_INSTANT, END_OF_CALENDAR - 1, None, 1704067200.0, None]
    assert (parsed.unparseable, parsed.missing) == (2, 1)

    epochs = parse_timestamps(pl.Series("t", [1.7e9, 1.7e9, 1.7e9, 1e308, -1e308]))
    assert epochs.seconds.to_list() == [1.7e9, 1.7e9, 1.7e9, None, None] and epochs.unparseable == 2


def test_dates_past_the_calendar_do_not_overflow_a_cast_to_microseconds() -> None:
    # PostgreSQL holds dates up to 5874897 AD; 2,000,000,000 days is past the microsecond range.
    days = pl.Series("d", [0, 19723, 2_000_000_000], dtype=pl.Int32).cast(pl.Date)
    parsed = parse_timestamps(days)
    assert parsed.seconds.to_list() == [0.0, 19723 * 86400.0, None] and parsed.unparseable == 1
    moments = pl.Series("t", [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)])
    assert parse_timestamps(moments).unparseable == 0
    assert parse_timestamps(pl.Series("d", [date(1, 1, 1)])).seconds.to_list() == [EARLIEST_INSTANT]


_SCHEMA = {
    "customerId": ColumnKind.CATEGORICAL,
    "channel": ColumnKind.CATEGORICAL,
    "timestamp": ColumnKind.CATEGORICAL,
    "interactionType": ColumnKind.CATEGORICAL,
}


@pytest.mark.parametrize(
    ("as_of", "refused"),
    [
        (EARLIEST_INSTANT, False),
        (EARLIEST_INSTANT - 1, True),
        (END_OF_CALENDAR - 1, False),
        (END_OF_CALENDAR, True),
        (math.inf, True),
        (math.nan, True),
    ],
)
def test_as_of_must_fall_in_the_calendar(as_of: float, refused: bool) -> None:
    if not refused:
        validate_policy_spec(PolicySpec(as_of=as_of), _SCHEMA)
        return
    with pytest.raises(ValidationFailed) as caught:
        validate_policy_spec(PolicySpec(as_of=as_of), _SCHEMA)
    assert [d["field"] for d in caught.value.details] == ["as_of"]


def test_band_bounds_past_the_weekly_maximum_are_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_policy_spec(PolicySpec(bands=(1, 3, 10**30)), _SCHEMA)
    assert [d["field"] for d in caught.value.details] == ["bands"]


# ----------------------------------------------------------------------------- content


def _frame(**overrides: pl.Series) -> pl.DataFrame:
    n = 4
    columns = {
        "id": pl.Series("id", [1, 2, 3, 4]),
        "channel": pl.Series("channel", ["email"] * n),
        "subject": pl.Series("subject", ["free sale"] * n),
        "impressions": pl.Series("impressions", [100.0, 200.0, 300.0, 400.0]),
        "clicks": pl.Series("clicks", [1.0, 2.0, 3.0, 4.0]),
        "conversions": pl.Series("conversions", [0.0, 1.0, 0.0, 1.0]),
    }
    return pl.DataFrame(list({**columns, **overrides}.values()))


@pytest.mark.parametrize(
    "column",
    [
        pl.Series("impressions", [100.0, math.inf, 300.0, 400.0]),
        pl.Series("impressions", [100, 2**53 + 1, 300, 400]),
        pl.Series("clicks", [1, 2, 3, 10**30], dtype=pl.Int128),
        pl.Series("revenue", [1.0, -1e300, 3.0, 4.0]),
    ],
)
def test_counts_and_revenue_beyond_2_53_are_refused_naming_the_column(column: pl.Series) -> None:
    with pytest.raises(ValidationFailed) as caught:
        read_creatives(_frame(**{column.name: column}), ContentSpec(), [])
    (detail,) = caught.value.details
    assert detail["field"] == column.name and detail[COLUMN_DETAIL]
    assert caught.value.message.startswith(f"'{column.name}': 1 values beyond ±2**53")


def test_a_nan_count_stays_a_missing_count() -> None:
    frame = _frame(clicks=pl.Series("clicks", [1.0, math.nan, 3.0, 4.0]))
    creatives = read_creatives(frame, ContentSpec(), [])
    assert (
        exclusion_reasons(creatives, ContentSpec(min_impressions=0), [])[1] is ExclusionReason.MISSING_COUNTS
    )


def test_a_rate_over_less_than_one_trial_is_undefined() -> None:
    frame = _frame(impressions=pl.Series("impressions", [5e-324, 0.5, 1.0, 400.0]))
    frame = frame.with_columns(pl.Series("clicks", [0.0, 0.0, 1.0, 4.0]))
    reasons = exclusion_reasons(read_creatives(frame, ContentSpec(), []), ContentSpec(min_impressions=0), [])
    assert reasons == [ExclusionReason.NO_IMPRESSIONS, ExclusionReason.NO_IMPRESSIONS, None, None]


def test_ids_a_json_writer_cannot_carry_come_back_as_text() -> None:
    wide = pl.Series("id", [10**30, 2, 3, 4], dtype=pl.Int128)
    assert read_creatives(_frame(id=wide), ContentSpec(), []).ids == [str(10**30), "2", "3", "4"]
    unsigned = pl.Series("id", [2**64 - 1, 2, 3, 4], dtype=pl.UInt64)
    assert read_creatives(_frame(id=unsigned), ContentSpec(), []).ids == [2**64 - 1, 2, 3, 4]


def test_reported_counts_and_rates_stay_json_numbers() -> None:
    assert _count(4.0) == 4 and isinstance(_count(4.0), int)
    # 2**60 is whole, but no exact JSON integer for every reader: it stays a number.
    assert isinstance(_count(2.0**60), float)
    assert safe_rate(1.0, 5e-324) is None and cvr(2.0**53, 1e-320) is None
    assert safe_rate(1.0, 4.0) == 0.25
