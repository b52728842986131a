"""Timestamps into epoch seconds, whatever the log holds: datetimes, dates, epoch numbers in any
unit, or ISO 8601 text (zoned or naive). An instant outside the calendar the analysis reports (years
1 to 9999 in UTC: `domain.policies.spec.in_calendar`) counts as unparseable, whatever its form: polars
reads year 0 and 1e308 epoch seconds, Python's datetime and the platform cannot."""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from domain.policies.spec import EARLIEST_INSTANT, END_OF_CALENDAR

# Epoch numbers carry no unit: the magnitude of the median tells. 1e11 s is the year 5138 and
# 1e11 ms is 1973, so the ranges do not overlap for any plausible interaction date.
EPOCH_UNITS: tuple[tuple[float, float, str], ...] = (
    (1e11, 1.0, "epoch_seconds"),
    (1e14, 1e-3, "epoch_milliseconds"),
    (1e17, 1e-6, "epoch_microseconds"),
    (math.inf, 1e-9, "epoch_nanoseconds"),
)
# ISO 8601 shapes after normalisation ("Z" -> +00:00, date-time separator -> "T"); naive ones are UTC.
ISO_FORMATS: tuple[tuple[str, bool], ...] = (
    ("%Y-%m-%dT%H:%M:%S%.f%#z", True),
    ("%Y-%m-%dT%H:%M:%S%.f", False),
    ("%Y-%m-%dT%H:%M%#z", True),
    ("%Y-%m-%dT%H:%M", False),
    ("%Y-%m-%d", False),
)


@dataclass(frozen=True)
class ParsedTimestamps:
    seconds: pl.Series  # Float64 epoch seconds, null where missing or unparseable
    missing: int
    unparseable: int
    format: str


def parse_timestamps(values: pl.Series) -> ParsedTimestamps:
    """Epoch seconds from datetimes, dates, epoch numbers (unit detected) or ISO 8601 strings."""
    parsed = _parse(values)
    seconds = parsed.seconds
    outside = int(
        (seconds.is_not_null() & ((seconds < EARLIEST_INSTANT) | (seconds >= END_OF_CALENDAR))).sum()
    )
    if not outside:
        return parsed
    within = pl.select(
        pl.when(seconds.is_between(EARLIEST_INSTANT, END_OF_CALENDAR, closed="left")).then(seconds)
    ).to_series()
    return ParsedTimestamps(within, parsed.missing, parsed.unparseable + outside, parsed.format)


def _parse(values: pl.Series) -> ParsedTimestamps:
    missing = values.null_count()
    dtype = values.dtype
    if dtype == pl.Date:
        # Days straight to seconds: a date far past year 9999 (PostgreSQL's reach 5874897 AD) would
        # overflow a cast to microseconds.
        seconds = values.cast(pl.Int32).cast(pl.Float64) * 86_400.0
        return ParsedTimestamps(seconds, missing, 0, "datetime")
    if dtype.is_temporal() and dtype != pl.Time and dtype != pl.Duration:
        seconds = values.dt.epoch("us").cast(pl.Float64) / 1e6
        return ParsedTimestamps(seconds, missing, 0, "datetime")
    if dtype.is_numeric():
        seconds, fmt = _epoch_seconds(values.cast(pl.Float64))
        return ParsedTimestamps(seconds, missing, seconds.null_count() - missing, fmt)
    if dtype in (pl.Utf8, pl.Categorical) or isinstance(dtype, pl.Enum):
        return _parse_strings(values.cast(pl.Utf8), missing)
    # Booleans are refused by validation; anything else (lists, structs, times) holds no instant.
    return ParsedTimestamps(
        pl.Series(values.name, [None] * values.len(), pl.Float64), missing, values.len() - missing, "unknown"
    )


def _epoch_seconds(numbers: pl.Series) -> tuple[pl.Series, str]:
    finite = numbers.filter(numbers.is_finite())
    numbers = pl.select(pl.when(numbers.is_finite()).then(numbers)).to_series()
    if finite.len() == 0:
        return numbers, "epoch_seconds"
    # A strided sample is enough to tell the unit and much cheaper than a full median.
    step = max(1, finite.len() // 10_000)
    median = finite.gather_every(step).abs().median()
    median = float(median) if isinstance(median, int | float) else 0.0
    for limit, scale, name in EPOCH_UNITS:
        if median < limit:
            return numbers * scale, name
    raise AssertionError("unreachable: the last unit has no limit")


def _parse_strings(text: pl.Series, missing: int) -> ParsedTimestamps:
    text = text.str.strip_chars()
    # Numbers in strings (CSV-like inline rows) are epochs like numeric columns.
    numeric = text.cast(pl.Float64, strict=False)
    n_numeric = numeric.len() - numeric.null_count()
    if n_numeric > 0 and n_numeric >= (text.len() - missing) / 2:
        seconds, fmt = _epoch_seconds(numeric)
        unparseable = seconds.null_count() - missing
        return ParsedTimestamps(seconds, missing, unparseable, f"{fmt} (text)")
    fast = _arrow_iso(text)
    if fast is not None:
        return ParsedTimestamps(fast, missing, 0, "iso8601")
    iso = text.str.replace(r"[zZ]$", "+00:00").str.replace(r"^(\d{4}-\d{2}-\d{2})[ tT]", "${1}T")
    first = iso.drop_nulls().head(1)
    formats = list(ISO_FORMATS)
    # Try first the shape of the first value: one parse pass over the data when it is consistent,
    # later shapes only over the rows still unparsed.
    for i, (fmt, aware) in enumerate(formats):
        if first.len() and _parse_iso(first, fmt, aware).null_count() == 0:
            formats.insert(0, formats.pop(i))
            break
    seconds = pl.Series(text.name, [None] * text.len(), pl.Float64)
    for fmt, aware in formats:
        pending = seconds.is_null() & iso.is_not_null()
        if not pending.any():
            break
        idx = pending.arg_true()
        parsed = _parse_iso(iso.gather(idx), fmt, aware)
        if parsed.null_count() < parsed.len():
            seconds = seconds.scatter(idx, parsed)
    return ParsedTimestamps(seconds, missing, seconds.null_count() - missing, "iso8601")


def _arrow_iso(text: pl.Series) -> pl.Series | None:
    """Epoch seconds when every value is one consistent ISO 8601 shape, else None.

    Arrow's ISO 8601 cast is about ten times faster than format-based parsing, but it is
    all-or-nothing: one odd value (or a mix of zoned and naive values) sends the column to the
    tolerant path, which counts the values it cannot read.
    """
    values = text.to_arrow()
    # Zoned values ("Z", "+02:00") first; naive ones are read as UTC.
    for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
        try:
            cast = pc.cast(values, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        parsed = pl.Series(text.name, cast)
        return parsed.dt.epoch("us").cast(pl.Float64) / 1e6
    return None


def _parse_iso(text: pl.Series, fmt: str, aware: bool) -> pl.Series:
    if fmt == "%Y-%m-%d":
        parsed = text.str.to_date(fmt, strict=False).cast(pl.Datetime("us"))
    elif aware:
        parsed = text.str.to_datetime(fmt, strict=False, time_zone="UTC", time_unit="us")
    else:
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
    return parsed.dt.epoch("us").cast(pl.Float64) / 1e6
