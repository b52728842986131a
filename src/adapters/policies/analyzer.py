"""Contact-policy analysis over an interaction log: polars for the aggregation, scikit-learn for the model.

The log is reduced to a few compact tables (per channel, per customer-week, per frequency band, per
gap between contacts) whose statistics domain.policies turns into findings and recommendations. The
raw rows are touched by vectorised polars expressions only, so millions of rows take seconds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from adapters.frames import FrameDataset
from application.ports import PolicyAnalyzer
from domain.errors import InsufficientData, field_error
from domain.policies import (
    COOLDOWN_EDGES_DAYS,
    BandStats,
    CapChoice,
    CooldownResult,
    FatigueResult,
    FrequencyBand,
    GapBucketStats,
    PolicySpec,
    band_summary,
    channel_rate_summary,
    choose_weekly_cap,
    cooldown_recommendation,
    detect_cooldown,
    detect_fatigue,
    frequency_bands,
    frequency_cap_recommendation,
    gap_bucket_edges,
    normalise_value,
    validate_policy_spec,
)
from domain.progress import ProgressReporter

DAY = 86_400.0
WEEK = 7 * DAY
# 1970-01-01 was a Thursday: weeks start on Mondays, four days later.
MONDAY_OFFSET = 4 * DAY

IMPRESSION, CLICK, CONVERSION = 0, 1, 2
MISSING_VALUE_KEY = "(missing)"
MISSING_CHANNEL = "(none)"
OTHER_CHANNELS = "(other)"
# Odd multiplier (2^64 / golden ratio) mixing a customer hash and a week number into one key.
CUSTOMER_WEEK_MIX = 0x9E3779B97F4A7C15

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
    missing = values.null_count()
    dtype = values.dtype
    if dtype.is_temporal() and dtype != pl.Time and dtype != pl.Duration:
        as_datetime = values.cast(pl.Datetime("us")) if dtype == pl.Date else values
        seconds = as_datetime.dt.epoch("us").cast(pl.Float64) / 1e6
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


def _iso(seconds: float | None) -> str | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _Progress:
    """Forwards progress reports, never backwards."""

    def __init__(self, report: ProgressReporter) -> None:
        self._report = report
        self._last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        self._last = max(self._last, min(1.0, fraction))
        self._report(self._last, message)


class PolarsPolicyAnalyzer(PolicyAnalyzer[pl.DataFrame]):
    """PolicyAnalyzer over a PolarsDataset. Stateless: one instance serves every job."""

    def __init__(
        self,
        *,
        max_model_rows: int = 100_000,
        attribution_days: int = 7,
        max_reported_values: int = 50,
        max_model_channels: int = 10,
    ) -> None:
        # The model is fitted on a seeded sample of customer-weeks above this: coefficients are
        # stable long before a million rows, and the fit stays well under a second.
        self._max_model_rows = max_model_rows
        # A conversion is credited to the last contact before it within this many days (cooldown).
        self._attribution_days = attribution_days
        self._max_reported_values = max_reported_values
        self._max_model_channels = max_model_channels

    def analyze(self, dataset: FrameDataset, spec: PolicySpec, progress: ProgressReporter) -> dict[str, Any]:
        validate_policy_spec(spec, dataset.schema)
        report = _Progress(progress)
        report(0.0, "Reading interactions")
        run = _Run(dataset.frame, spec, self, report)
        result: dict[str, Any] = json_safe(run.execute())
        return result


class _Run:
    """One analysis: holds the intermediate tables so each step reads like the method it implements."""

    def __init__(
        self, frame: pl.DataFrame, spec: PolicySpec, analyzer: PolarsPolicyAnalyzer, report: _Progress
    ) -> None:
        self.frame = frame
        self.spec = spec
        self.cfg = analyzer
        self.report = report
        self.notes: list[str] = []
        self.warnings: list[str] = []

    # --- orchestration --------------------------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        spec = self.spec
        if self.frame.height == 0:
            raise InsufficientData("The data has no rows.")
        events, summary = self._prepare()
        self.report(0.25, "Aggregating channels and customer-weeks")
        channels = self._channels(events)
        by_volume = sorted(channels, key=lambda c: (-c["impressions"], c["channel"]))
        self.model_channels = [c["channel"] for c in by_volume[: self.cfg._max_model_channels]]
        weeks = self._customer_weeks(events, summary)
        self.report(0.45, "Testing frequency bands for fatigue")
        bands = self._band_stats(weeks)
        fatigue = detect_fatigue(bands, alpha=spec.alpha, min_samples=spec.min_samples_per_band)
        choice = choose_weekly_cap(bands, fatigue, spec.caps, min_samples=spec.min_samples_per_band)
        per_channel = self._channel_fatigue(weeks, channels)
        population = "all customer-weeks"
        refined = self._within_channel_caps(weeks, per_channel)
        if refined is not None:
            fatigue, choice = refined
            population = "customer-weeks within the channel caps"
            self.notes.append(
                "Channels fatigue at different frequencies, so the global cap was measured on the "
                "customer-weeks that respect the channel caps."
            )
        channel_caps = self._describe_channel_caps(channels, per_channel, choice)
        self.report(0.55, "Measuring gaps between contacts")
        # With frequency fatigue, short gaps and high weekly frequency go together; testing spacing
        # only within the recommended cap keeps the cooldown from re-discovering the same fatigue.
        cooldown_scope = choice.cap if choice.fatigue_detected else None
        gaps = self._gap_buckets(events, cooldown_scope)
        cooldown = detect_cooldown(
            gaps,
            alpha=spec.alpha,
            min_samples=spec.min_samples_per_band,
            attribution_days=self.cfg._attribution_days,
        )
        self.report(0.7, "Fitting the conversion model")
        model = self._model(weeks)
        self.report(0.9, "Building recommendations")
        recommendations = self._recommendations(
            choice, fatigue, cooldown, cooldown_scope, channel_caps, model
        )
        self._data_notes(summary, channels, fatigue, choice, cooldown, recommendations)
        result = {
            "summary": summary,
            "frequencyBands": [band_summary(b, spec.min_samples_per_band) for b in bands],
            "fatiguePoint": {**fatigue.as_dict(), "population": population},
            "channels": channels,
            "cooldown": {
                **cooldown.as_dict(gaps, spec.min_samples_per_band),
                "maxWeeklyContacts": cooldown_scope,
            },
            "model": model,
            "recommendedWeeklyCap": choice.cap,
            "recommendations": recommendations,
            "notes": self.notes,
            "warnings": self.warnings,
        }
        self.report(1.0, "Done")
        return result

    # --- step 1: clean rows and the lookback window ---------------------------------------------

    def _prepare(self) -> tuple[pl.DataFrame, dict[str, Any]]:
        spec, frame = self.spec, self.frame
        parsed = parse_timestamps(frame.get_column(spec.timestamp))
        self.report(0.1, "Classifying interactions")
        kind, unknown = self._interaction_kinds()
        customer = pl.col(spec.customer_id)
        channel = pl.col(spec.channel).cast(pl.Utf8).fill_null(MISSING_CHANNEL)
        # Channels as an Enum: group-bys and comparisons run on small integers, not strings.
        names = frame.select(channel.unique()).to_series().sort().to_list()
        self.channel_codes = {name: i for i, name in enumerate(names)}
        columns = [
            # A 64-bit hash as the customer key: grouping and sorting integers is several times
            # faster than strings. Collisions (~1e-8 for a million customers) would merge two histories.
            customer.hash(seed=0).alias("key"),
            channel.cast(pl.Enum(names)).alias("channel"),
            pl.col("__ts").alias("ts"),
            pl.col("__kind").alias("kind"),
        ]
        if spec.offer_id is not None:
            columns.append(pl.col(spec.offer_id).alias("offer"))
        valid = (
            frame.lazy()
            .with_columns(pl.lit(parsed.seconds).alias("__ts"), kind.alias("__kind"))
            .filter(customer.is_not_null() & pl.col("__ts").is_not_null() & pl.col("__kind").is_not_null())
            .select(columns)
            .collect()
        )
        missing_customer = frame.get_column(spec.customer_id).null_count()
        if self.spec.as_of is not None:
            end = float(self.spec.as_of)
        else:
            newest = valid.get_column("ts").max()
            if newest is None:
                raise self._nothing_usable(parsed, unknown)
            end = float(newest)  # type: ignore[arg-type]
        end_day = math.ceil(end / DAY) * DAY
        start = end_day - spec.lookback_days * DAY
        week = ((pl.col("ts") - MONDAY_OFFSET) / WEEK).floor().cast(pl.Int32)
        week_start = week.cast(pl.Float64) * WEEK + MONDAY_OFFSET
        events = valid.filter((pl.col("ts") >= start) & (pl.col("ts") <= end)).with_columns(
            week.alias("week"),
            # Only whole weeks inside the window count for weekly frequency: a week cut by the
            # window's edge would look like a low-frequency week.
            ((week_start >= start) & (week_start + WEEK <= end_day)).alias("complete"),
        )
        if events.height == 0:
            raise InsufficientData(
                "No usable interactions fall in the lookback window.",
                [field_error("lookbackDays", f"window {_iso(start)} to {_iso(end)} holds no usable rows")],
            )
        stats = events.select(
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
            pl.col("key").n_unique().alias("customers"),
            (pl.col("kind") == IMPRESSION).sum().alias("impressions"),
            (pl.col("kind") == CLICK).sum().alias("clicks"),
            (pl.col("kind") == CONVERSION).sum().alias("conversions"),
            *([pl.col("offer").drop_nulls().n_unique().alias("offers")] if spec.offer_id else []),
        ).row(0, named=True)
        if stats["impressions"] == 0:
            raise InsufficientData(
                "No impressions (contacts) in the lookback window: contact frequency cannot be measured.",
                [
                    field_error(
                        "interactionValues.impression",
                        f"no row has an interaction type in {list(spec.impression_values)}",
                    )
                ],
            )
        unknown_total = sum(unknown.values())
        unknown_top = dict(list(unknown.items())[: self.cfg._max_reported_values])
        summary: dict[str, Any] = {
            "rows": frame.height,
            "rowsUsed": events.height,
            "customers": stats["customers"],
            "customerWeeks": 0,
            "weeks": 0,
            "dateRange": {"from": _iso(stats["first"]), "to": _iso(stats["last"])},
            "window": {"from": _iso(start), "to": _iso(end), "lookbackDays": spec.lookback_days},
            "interactions": {
                "impressions": stats["impressions"],
                "clicks": stats["clicks"],
                "conversions": stats["conversions"],
            },
            "unknownInteractionTypes": unknown_top,
            "unknownInteractionRows": unknown_total,
            "unparseableTimestamps": parsed.unparseable,
            "missingTimestamps": parsed.missing,
            "missingCustomerIds": missing_customer,
            "timestampFormat": parsed.format,
            "outsideLookback": valid.height - events.height,
        }
        if spec.offer_id:
            summary["offers"] = stats["offers"]
        self._row_warnings(summary, unknown_total, unknown_top)
        return events, summary

    def _interaction_kinds(self) -> tuple[pl.Expr, dict[str, int]]:
        """The kind of each row (impression, click, conversion or null) and the unknown values' counts.

        Interaction types have few distinct values: they are normalised once per value in Python,
        and the rows mapped with one vectorised replace.
        """
        spec = self.spec
        kind_of = {
            **{normalise_value(v): CONVERSION for v in spec.conversion_values},
            **{normalise_value(v): CLICK for v in spec.click_values},
            **{normalise_value(v): IMPRESSION for v in spec.impression_values},
        }
        raw = pl.col(spec.interaction_type)
        dtype = self.frame.schema[spec.interaction_type]
        if dtype == pl.Categorical or isinstance(dtype, pl.Enum):
            raw = raw.cast(pl.Utf8)
        counts = self.frame.select(raw.alias("value")).group_by("value").agg(pl.len().alias("n"))
        mapping: dict[Any, int] = {}
        unknown: dict[str, int] = {}
        for value, n in counts.iter_rows():
            known = None if value is None else kind_of.get(normalise_value(str(value)))
            if known is None:
                label = MISSING_VALUE_KEY if value is None else normalise_value(str(value))
                unknown[label] = unknown.get(label, 0) + int(n)
            else:
                mapping[value] = known
        ordered = dict(sorted(unknown.items(), key=lambda item: (-item[1], item[0])))
        if not mapping:
            return pl.lit(None, pl.UInt8), ordered
        return raw.replace_strict(mapping, default=None, return_dtype=pl.UInt8), ordered

    def _nothing_usable(self, parsed: ParsedTimestamps, unknown: Mapping[str, int]) -> InsufficientData:
        spec = self.spec
        details = []
        if parsed.unparseable + parsed.missing == self.frame.height:
            details.append(
                field_error("fieldMap.timestamp", f"no value of {spec.timestamp!r} is a timestamp")
            )
        seen = list(unknown)[:10]
        if seen:
            details.append(
                field_error("interactionValues", f"interaction types seen include {seen}; none is mapped")
            )
        return InsufficientData(
            "No row has a customer, a parseable timestamp and a mapped interaction type.", details
        )

    def _row_warnings(
        self, summary: Mapping[str, Any], unknown_total: int, unknown_top: Mapping[str, int]
    ) -> None:
        if summary["unparseableTimestamps"]:
            self.warnings.append(
                f"{summary['unparseableTimestamps']:,} rows have timestamps that could not be parsed "
                "(ISO 8601 or epoch seconds/milliseconds expected); they were dropped."
            )
        if summary["missingTimestamps"]:
            self.warnings.append(
                f"{summary['missingTimestamps']:,} rows have no timestamp; they were dropped."
            )
        if summary["missingCustomerIds"]:
            self.warnings.append(
                f"{summary['missingCustomerIds']:,} rows have no customer id; they were dropped."
            )
        if unknown_total:
            top = ", ".join(f"{k!r} ({v:,})" for k, v in list(unknown_top.items())[:5])
            self.warnings.append(
                f"{unknown_total:,} rows have interaction types that are not mapped to impression, click or "
                f"conversion ({top}); they were ignored."
            )

    # --- step 2: channels -----------------------------------------------------------------------

    def _channels(self, events: pl.DataFrame) -> list[dict[str, Any]]:
        table = (
            events.group_by("channel")
            .agg(
                (pl.col("kind") == IMPRESSION).sum().alias("impressions"),
                (pl.col("kind") == CLICK).sum().alias("clicks"),
                (pl.col("kind") == CONVERSION).sum().alias("conversions"),
            )
            .sort("channel")
        )
        total = int(table.get_column("impressions").sum())
        channels = []
        for row in table.iter_rows(named=True):
            entry = channel_rate_summary(
                row["channel"], row["impressions"], row["clicks"], row["conversions"]
            )
            entry["share"] = row["impressions"] / total if total else 0.0
            channels.append(entry)
        # Ranked by conversions per impression (what a contact on the channel yields), then CTR.
        channels.sort(
            key=lambda c: (
                -(c["conversionsPerImpression"] or 0.0),
                -(c["ctr"] or 0.0),
                -c["impressions"],
                c["channel"],
            )
        )
        for rank, entry in enumerate(channels, start=1):
            entry["rank"] = rank
        for entry in channels:
            if entry["cvr"] is not None and entry["cvrCi"] is None:
                self.warnings.append(
                    f"Channel {entry['channel']!r} has more conversions than clicks (conversions without a "
                    "click?): its CVR is not a proportion and has no interval."
                )
        return channels

    # --- step 3: customer-weeks and frequency bands ---------------------------------------------

    def _customer_weeks(self, events: pl.DataFrame, summary: dict[str, Any]) -> pl.DataFrame:
        """One row per customer and complete week with at least one contact; ch{i} counts the
        contacts on the i-th most used channel."""
        spec = self.spec
        model_channels = self.model_channels
        impression = pl.col("kind") == IMPRESSION
        conversion = pl.col("kind") == CONVERSION
        per_channel = []
        for i, name in enumerate(model_channels):
            on_channel = pl.col("channel") == name
            per_channel.append((impression & on_channel).sum().cast(pl.Int64).alias(f"ch{i}"))
            per_channel.append((conversion & on_channel).sum().cast(pl.Int64).alias(f"cv{i}"))
        code = pl.col("channel").to_physical()
        weeks = (
            events.lazy()
            .filter(pl.col("complete"))
            # One 64-bit key per customer-week: grouping on one integer column is faster than on two.
            .with_columns((pl.col("key") * CUSTOMER_WEEK_MIX + pl.col("week").cast(pl.UInt64)).alias("cw"))
            .group_by("cw")
            .agg(
                pl.col("key").first(),
                pl.col("week").first(),
                impression.sum().cast(pl.Int64).alias("f"),
                (pl.col("kind") == CONVERSION).sum().cast(pl.Int64).alias("conv"),
                # One channel iff the smallest and largest channel codes of the week's contacts agree.
                # when/then rather than filter inside the aggregation: it keeps polars on its
                # fast grouped-aggregation path.
                pl.when(impression).then(code).min().alias("first_code"),
                pl.when(impression).then(code).max().alias("last_code"),
                *per_channel,
            )
            .with_columns(
                (pl.col("first_code") == pl.col("last_code")).fill_null(False).alias("single_channel"),
                pl.col("first_code").alias("only_channel"),
            )
            .collect()
        )
        without_contacts = weeks.filter(pl.col("f") == 0).height
        weeks = weeks.filter(pl.col("f") > 0).with_columns(
            pl.min_horizontal("conv", "f").alias("y"),
            pl.sum_horizontal([(pl.col("f") > b).cast(pl.Int32) for b in spec.bands]).alias("band"),
        )
        weeks = self._add_strata(weeks)
        summary["customerWeeks"] = weeks.height
        summary["weeks"] = weeks.get_column("week").n_unique() if weeks.height else 0
        summary["customerWeeksWithoutContacts"] = without_contacts
        if weeks.height == 0:
            self.warnings.append(
                "No complete calendar week (Monday to Sunday, UTC) with contacts lies inside the lookback "
                "window: weekly frequency cannot be measured."
            )
        return weeks

    def _add_strata(self, weeks: pl.DataFrame) -> pl.DataFrame:
        """Per-channel contacts sf{j} and attributed conversions sy{j} of each customer-week, for
        channel-adjusted fatigue tests; channels beyond the top ones are pooled as "(other)".

        The adjustment needs conversions labelled with the channels of the contacts. When most are
        not (e.g. all conversions logged on "web"), it is switched off rather than losing them.
        """
        self.strata: list[str] = []
        if len(self.model_channels) < 2 or weeks.height == 0:
            return weeks
        n = len(self.model_channels)
        columns = []
        for i in range(n):
            columns += [
                pl.col(f"ch{i}").alias(f"sf{i}"),
                pl.min_horizontal(f"cv{i}", f"ch{i}").alias(f"sy{i}"),
            ]
        other_f = pl.col("f") - pl.sum_horizontal([f"ch{i}" for i in range(n)])
        other_conv = pl.col("conv") - pl.sum_horizontal([f"cv{i}" for i in range(n)])
        columns += [other_f.alias(f"sf{n}"), pl.min_horizontal(other_conv, other_f).alias(f"sy{n}")]
        with_strata = weeks.with_columns(columns)
        totals = with_strata.select(
            pl.col("y").sum().alias("y"),
            pl.sum_horizontal([f"sy{j}" for j in range(n + 1)]).sum().alias("sy"),
        ).row(0, named=True)
        if totals["y"] and totals["sy"] < 0.8 * totals["y"]:
            self.notes.append(
                "Most conversions are not logged on the channel of a contact in the same week, so the "
                "fatigue test is not adjusted for channel mix."
            )
            return weeks
        self.strata = [*self.model_channels, OTHER_CHANNELS]
        return with_strata

    def _band_stats(self, weeks: pl.DataFrame) -> list[BandStats]:
        table = _band_table(weeks, strata=len(self.strata))
        return _to_band_stats(table, self.spec.bands, self.strata)

    # --- step 4: gaps between contacts (cooldown) -----------------------------------------------

    def _gap_buckets(self, events: pl.DataFrame, max_weekly: int | None) -> list[GapBucketStats]:
        """Repeat contacts by gap since the previous contact, and whether each converted (last touch).

        `max_weekly`: only contacts of complete customer-weeks with at most that many contacts.
        """
        attribution = self.cfg._attribution_days * DAY
        key, ts, kind = pl.col("key"), pl.col("ts"), pl.col("kind")
        # Eager steps: the sort dominates, and the lazy engine was measured slower on this chain.
        # Impressions sort before conversions at the same instant, so such a conversion follows them.
        ordered = (
            events.filter(kind != CLICK)
            .select("key", "ts", "kind", "week", "complete", "channel")
            .sort("key", "ts", "kind")
            .with_columns(
                pl.when(kind == CONVERSION).then(ts).backward_fill().alias("next_conv_ts"),
                pl.when(kind == CONVERSION).then(key).backward_fill().alias("next_conv_key"),
            )
            .filter(kind == IMPRESSION)
        )
        contacts = ordered.with_columns(
            pl.when(key.shift(1) == key).then(ts - ts.shift(1)).alias("gap"),
            pl.when(key.shift(-1) == key).then(ts.shift(-1)).alias("next_ts"),
        )
        keep = pl.col("gap").is_not_null()
        if max_weekly is not None:
            # Rows are sorted by customer and time, so each customer-week is one run of rows: its
            # length is the week's contact count (no hash group-by needed).
            run = ((key != key.shift(1)) | (pl.col("week") != pl.col("week").shift(1))).fill_null(True)
            contacts = contacts.with_columns((run.cum_sum() - 1).alias("run"))
            lengths = contacts.get_column("run").rle().struct.field("len")
            contacts = contacts.with_columns(lengths.gather(contacts.get_column("run")).alias("weekly"))
            keep = keep & pl.col("complete") & (pl.col("weekly") <= max_weekly)
        converted = (
            (pl.col("next_conv_key") == key).fill_null(False)
            & (pl.col("next_conv_ts") - ts <= attribution).fill_null(False)
            & (pl.col("next_ts").is_null() | (pl.col("next_conv_ts") < pl.col("next_ts"))).fill_null(False)
        )
        bucket = pl.sum_horizontal([(pl.col("gap") >= d * DAY).cast(pl.Int32) for d in COOLDOWN_EDGES_DAYS])
        table = (
            contacts.filter(keep)
            .with_columns(converted.alias("converted"), bucket.alias("bucket"))
            .group_by("bucket", "channel")
            .agg(pl.len().alias("contacts"), pl.col("converted").sum().alias("conversions"))
        )
        buckets = []
        for i, (lower, upper) in enumerate(gap_bucket_edges()):
            rows = table.filter(pl.col("bucket") == i).sort("channel")
            strata = tuple(
                (
                    str(row["channel"]),
                    GapBucketStats(lower, upper, int(row["contacts"]), int(row["conversions"])),
                )
                for row in rows.iter_rows(named=True)
            )
            buckets.append(
                GapBucketStats(
                    lower_days=lower,
                    upper_days=upper,
                    contacts=sum(st.contacts for _, st in strata),
                    conversions=sum(st.conversions for _, st in strata),
                    strata=strata if len(strata) > 1 else (),
                )
            )
        return buckets

    # --- step 5: the model ----------------------------------------------------------------------

    def _model(self, weeks: pl.DataFrame) -> dict[str, Any] | None:
        """Logistic regression of "customer-week converted" on frequency, frequency^2 and channel mix."""
        if weeks.height == 0:
            return None
        model_channels = self.model_channels
        f = weeks.get_column("f").to_numpy().astype(np.float64)
        y = (weeks.get_column("conv").to_numpy() > 0).astype(np.int8)
        names = ["frequency", "frequencySquared"]
        columns = [f, f * f]
        # Channel mix = share of the week's contacts per channel; the most used channel is the
        # reference (its share is implied by the others), so coefficients read "vs the reference".
        counts = {name: weeks.get_column(f"ch{i}").to_numpy() for i, name in enumerate(model_channels)}
        reference = (
            max(model_channels, key=lambda name: (counts[name].sum(), name)) if model_channels else None
        )
        covered = np.zeros_like(f)
        for name in model_channels:
            covered += counts[name]
            if name != reference:
                names.append(f"channel:{name}")
                columns.append(counts[name] / f)
        if np.any(covered < f):
            names.append(f"channel:{OTHER_CHANNELS}")
            columns.append((f - covered) / f)
        x = np.column_stack(columns)
        positives = int(y.sum())
        negatives = int(y.size - positives)
        minimum = max(20, self.spec.min_samples_per_band)
        if positives < minimum or negatives < minimum:
            self.notes.append(
                f"The conversion model needs at least {minimum} converted and {minimum} non-converted "
                f"customer-weeks; the data has {positives:,} and {negatives:,}. It was not fitted."
            )
            return None
        # group_by returns rows in no fixed order: sort by content so the seeded sample and split
        # see the same rows in the same order on every run.
        order = np.lexsort((*[x[:, j] for j in range(x.shape[1] - 1, -1, -1)], y)[::-1])
        x, y = x[order], y[order]
        rng = np.random.default_rng(self.spec.random_state)
        sampled = y.size > self.cfg._max_model_rows
        if sampled:
            keep = np.sort(rng.choice(y.size, size=self.cfg._max_model_rows, replace=False))
            x, y = x[keep], y[keep]
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=0.25, random_state=self.spec.random_state, stratify=y
        )
        scaler = StandardScaler().fit(x_train)
        # Newton-Cholesky: few features and many rows, so a handful of exact Newton steps beat L-BFGS.
        model = LogisticRegression(solver="newton-cholesky", max_iter=100).fit(
            scaler.transform(x_train), y_train
        )
        auc = float(roc_auc_score(y_test, model.predict_proba(scaler.transform(x_test))[:, 1]))
        # Back to original units: a coefficient per extra contact, per unit of channel share.
        coef = model.coef_[0] / scaler.scale_
        intercept = float(model.intercept_[0] - np.sum(model.coef_[0] * scaler.mean_ / scaler.scale_))
        coefficients = {"intercept": intercept, **{n: float(c) for n, c in zip(names, coef, strict=True)}}
        odds = {n: _safe_exp(float(c)) for n, c in zip(names, coef, strict=True)}
        mix = x[:, 2:].mean(axis=0)
        grid = np.arange(1, int(min(f.max(), 100)) + 1, dtype=np.float64)
        logits = intercept + coef[0] * grid + coef[1] * grid * grid + float(np.dot(coef[2:], mix))
        p = 1.0 / (1.0 + np.exp(-logits))
        return {
            "kind": "logistic_regression",
            "target": "customer-week has at least one conversion",
            "features": names,
            "referenceChannel": reference,
            "coefficients": coefficients,
            "oddsRatios": odds,
            "auc": auc,
            "samples": {"train": int(y_train.size), "test": int(y_test.size), "sampled": sampled},
            # Where the fitted curve of P(converted) over weekly frequency peaks (at the average mix).
            "peakFrequency": int(grid[int(np.argmax(p))]),
            "conversionProbabilityAtPeak": float(p.max()),
        }

    # --- step 6: per-channel caps ---------------------------------------------------------------

    def _channel_fatigue(
        self, weeks: pl.DataFrame, channels: Sequence[Mapping[str, Any]]
    ) -> dict[str, tuple[CapChoice, FatigueResult, int]]:
        """Fatigue per channel, on the customer-weeks contacted on that channel only.

        Weeks that mix channels are left out: there a channel's own frequency is confounded with the
        contacts on the other channels.
        """
        spec = self.spec
        if len(channels) < 2 or weeks.height == 0:
            return {}
        table = _band_table(weeks.filter(pl.col("single_channel")), by="only_channel")
        found = {}
        for entry in channels:
            name = entry["channel"]
            code = self.channel_codes[name]
            stats = _to_band_stats(table.filter(pl.col("only_channel") == code), spec.bands)
            fatigue = detect_fatigue(stats, alpha=spec.alpha, min_samples=spec.min_samples_per_band)
            choice = choose_weekly_cap(stats, fatigue, spec.caps, min_samples=spec.min_samples_per_band)
            found[name] = (choice, fatigue, sum(s.customer_weeks for s in stats))
        return found

    def _within_channel_caps(
        self, weeks: pl.DataFrame, per_channel: Mapping[str, tuple[CapChoice, FatigueResult, int]]
    ) -> tuple[FatigueResult, CapChoice] | None:
        """The global fatigue test again, on the customer-weeks that respect every channel cap.

        Only when channels fatigue at different frequencies: then a channel that tires early (say
        SMS) drags the pooled curve down at a frequency the other channels tolerate, and the global
        cap should be measured as if the channel caps were in force. None when that does not apply
        or does not yield a cap.
        """
        spec = self.spec
        caps = {
            name: choice.cap
            for name, (choice, _, _) in per_channel.items()
            if choice.fatigue_detected and choice.cap is not None and name in self.model_channels
        }
        if len(set(caps.values())) < 2:
            return None
        # Only the channels that tire earlier than the most tolerant one are held to their caps.
        loosest = max(caps.values())
        within = pl.lit(True)
        for name, cap in caps.items():
            if cap < loosest:
                within = within & (pl.col(f"ch{self.model_channels.index(name)}") <= cap)
        bands = self._band_stats(weeks.filter(within))
        fatigue = detect_fatigue(bands, alpha=spec.alpha, min_samples=spec.min_samples_per_band)
        choice = choose_weekly_cap(bands, fatigue, spec.caps, min_samples=spec.min_samples_per_band)
        return (fatigue, choice) if choice.cap is not None else None

    def _describe_channel_caps(
        self,
        channels: Sequence[dict[str, Any]],
        per_channel: Mapping[str, tuple[CapChoice, FatigueResult, int]],
        global_choice: CapChoice,
    ) -> list[_ChannelFatigue]:
        """Each channel's finding into its entry; a channel cap is worth a rule only when fatigue is
        detected and the cap is stricter than the global one (else the global cap covers it)."""
        reference_cap = global_choice.cap if global_choice.cap is not None else self.spec.caps.weekly
        found = []
        for entry in channels:
            if entry["channel"] not in per_channel:
                continue
            choice, fatigue, n = per_channel[entry["channel"]]
            stricter = choice.fatigue_detected and choice.cap is not None and choice.cap < reference_cap
            entry["frequencyCap"] = {
                "singleChannelCustomerWeeks": n,
                "fatigueDetected": fatigue.detected,
                "band": fatigue.last_good.band.label if fatigue.detected and fatigue.last_good else None,
                "fatiguedBand": fatigue.fatigued.band.label if fatigue.fatigued else None,
                "pValue": fatigue.test.p_value if fatigue.detected and fatigue.test else None,
                "weeklyCap": choice.cap if choice.fatigue_detected else None,
                "recommended": stricter,
                "reason": fatigue.reason,
            }
            found.append(_ChannelFatigue(entry["channel"], choice, fatigue, stricter))
        return found

    # --- step 7: recommendations and notes ------------------------------------------------------

    def _recommendations(
        self,
        choice: CapChoice,
        fatigue: FatigueResult,
        cooldown: CooldownResult,
        cooldown_scope: int | None,
        channel_caps: Sequence[_ChannelFatigue],
        model: Mapping[str, Any] | None,
    ) -> list[dict[str, Any]]:
        spec = self.spec
        model_evidence = (
            {"modelPeakFrequency": model["peakFrequency"], "modelAuc": model["auc"]} if model else None
        )
        recommendations = []
        overall = frequency_cap_recommendation(
            choice, fatigue, spec.caps, min_samples=spec.min_samples_per_band, extra_evidence=model_evidence
        )
        if overall is not None:
            recommendations.append(overall)
        for item in channel_caps:
            if not item.stricter:
                continue
            rec = frequency_cap_recommendation(
                item.choice,
                item.fatigue,
                spec.caps,
                min_samples=spec.min_samples_per_band,
                channel=item.channel,
                extra_evidence={"population": "customer-weeks contacted on this channel only"},
            )
            if rec is not None:
                recommendations.append(rec)
        scope = (
            {"population": f"contacts of customer-weeks with at most {cooldown_scope} contacts"}
            if cooldown_scope is not None
            else None
        )
        rec = cooldown_recommendation(
            cooldown, spec.caps, min_samples=spec.min_samples_per_band, extra_evidence=scope
        )
        if rec is not None:
            recommendations.append(rec)
        return recommendations

    def _data_notes(
        self,
        summary: Mapping[str, Any],
        channels: Sequence[Mapping[str, Any]],
        fatigue: FatigueResult,
        choice: CapChoice,
        cooldown: CooldownResult,
        recommendations: Sequence[Mapping[str, Any]],
    ) -> None:
        spec = self.spec
        interactions = summary["interactions"]
        if interactions["conversions"] == 0:
            self.warnings.append(
                "No conversions in the lookback window (conversion values: "
                f"{list(spec.conversion_values)}): conversion rates are all zero, so no policy can be "
                "derived."
            )
        if interactions["clicks"] == 0:
            self.warnings.append(
                f"No clicks in the lookback window (click values: {list(spec.click_values)}): CTR is zero "
                "and CVR is undefined."
            )
        if len(channels) == 1:
            self.warnings.append(
                f"Only one channel ({channels[0]['channel']!r}): channels cannot be compared and the model "
                "has no channel effect."
            )
        if 0 < summary["customerWeeks"] < spec.min_samples_per_band * 2:
            self.warnings.append(
                f"Only {summary['customerWeeks']:,} customer-weeks: too few for per-band statistics "
                f"(minSamplesPerBand {spec.min_samples_per_band})."
            )
        if choice.cap is None:
            self.notes.append(f"No frequency cap recommended: {choice.reason}")
        elif not choice.fatigue_detected:
            self.notes.append(f"No fatigue detected: {fatigue.reason}")
        if cooldown.days is None:
            self.notes.append(f"No cooldown recommended: {cooldown.reason}")
        if not recommendations:
            self.notes.append("No recommendation: the data does not support a policy change with confidence.")


@dataclass(frozen=True)
class _ChannelFatigue:
    channel: str
    choice: CapChoice
    fatigue: FatigueResult
    # True when the channel's cap is detected and stricter than the global cap: worth a rule.
    stricter: bool


def _safe_exp(x: float) -> float | None:
    return math.exp(x) if x < 700 else None


def _sums(f: str, y: str, prefix: str, converted: pl.Expr) -> list[pl.Expr]:
    fc, yc = pl.col(f), pl.col(y)
    return [
        (fc > 0).sum().alias(f"{prefix}n"),
        converted.sum().alias(f"{prefix}converted"),
        fc.sum().alias(f"{prefix}contacts"),
        yc.sum().alias(f"{prefix}conversions"),
        (yc * yc).sum().cast(pl.Float64).alias(f"{prefix}y2"),
        (fc * fc).sum().cast(pl.Float64).alias(f"{prefix}f2"),
        (yc * fc).sum().cast(pl.Float64).alias(f"{prefix}yf"),
    ]


def _band_table(weeks: pl.DataFrame, by: str | None = None, strata: int = 0) -> pl.DataFrame:
    """Sufficient statistics per band (and per `by`), overall and for strata sf{j}/sy{j}."""
    keys = ["band"] if by is None else [by, "band"]
    exprs = _sums("f", "y", "", pl.col("conv") > 0)
    for j in range(strata):
        exprs += _sums(f"sf{j}", f"sy{j}", f"s{j}_", pl.col(f"sy{j}") > 0)
    return weeks.group_by(keys).agg(exprs)


def _stats_from_row(band: FrequencyBand, row: Mapping[str, Any], prefix: str = "") -> BandStats:
    return BandStats(
        band=band,
        customer_weeks=int(row[f"{prefix}n"]),
        converted_weeks=int(row[f"{prefix}converted"]),
        contacts=int(row[f"{prefix}contacts"]),
        conversions=int(row[f"{prefix}conversions"]),
        sum_conversions_sq=float(row[f"{prefix}y2"]),
        sum_contacts_sq=float(row[f"{prefix}f2"]),
        sum_cross=float(row[f"{prefix}yf"]),
    )


def _to_band_stats(table: pl.DataFrame, bounds: Sequence[int], strata: Sequence[str] = ()) -> list[BandStats]:
    rows = {row["band"]: row for row in table.iter_rows(named=True)}
    stats = []
    for band in frequency_bands(bounds):
        row = rows.get(band.index)
        if row is None:
            stats.append(BandStats(band, 0, 0, 0, 0))
            continue
        overall = _stats_from_row(band, row)
        by_channel = tuple(
            (name, _stats_from_row(band, row, f"s{j}_"))
            for j, name in enumerate(strata)
            if row[f"s{j}_contacts"] > 0
        )
        stats.append(dataclasses.replace(overall, strata=by_channel))
    return stats
