"""Contact-policy analysis over an interaction log: polars for the aggregation, scikit-learn for the model.

The log is reduced to a few compact tables (per channel, per customer-week, per frequency band, per
gap between contacts) whose statistics domain.policies turns into findings and recommendations. The
raw rows are touched by vectorised polars expressions only, so millions of rows take seconds. Each
step is a module of this package; this one runs them in order.
"""

from __future__ import annotations

import dataclasses

import polars as pl

from adapters.frames import FrameDataset
from adapters.policies.band_tables import band_stats
from adapters.policies.channel_caps import (
    channel_fatigue,
    fatigue_test,
    with_channel_caps,
    within_channel_caps,
)
from adapters.policies.channels import channel_summaries
from adapters.policies.conversion_model import fit_conversion_model
from adapters.policies.customer_weeks import customer_weeks
from adapters.policies.events import prepare_events
from adapters.policies.gaps import gap_buckets
from adapters.policies.recommendations import data_notes, recommendations
from adapters.policies.remarks import Remarks
from application.ports import PolicyAnalyzer
from domain.errors import InsufficientData
from domain.policies.bands import band_summary
from domain.policies.cooldown import detect_cooldown
from domain.policies.result import PolicyAnalysisResult
from domain.policies.spec import PolicySpec, validate_policy_spec
from domain.progress import ProgressReporter


class _Progress:
    """Forwards progress reports, never backwards."""

    def __init__(self, report: ProgressReporter) -> None:
        self._report = report
        self._last = 0.0

    def __call__(self, fraction: float, message: str = "") -> None:
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
        # The model is fitted on a seeded sample of customer-weeks above this.
        self._max_model_rows = max_model_rows
        # A conversion is credited to the last contact before it within this many days (cooldown).
        self._attribution_days = attribution_days
        self._max_reported_values = max_reported_values
        self._max_model_channels = max_model_channels

    def analyze(
        self, dataset: FrameDataset, spec: PolicySpec, progress: ProgressReporter
    ) -> PolicyAnalysisResult:
        validate_policy_spec(spec, dataset.schema)
        report = _Progress(progress)
        report(0.0, "Reading interactions")
        frame = dataset.frame
        if frame.height == 0:
            raise InsufficientData("The data has no rows.")
        remarks = Remarks()
        log = prepare_events(frame, spec, remarks, report, self._max_reported_values)
        events = log.frame

        report(0.25, "Aggregating channels and customer-weeks")
        channels = channel_summaries(events, remarks)
        by_volume = sorted(channels, key=lambda c: (-c.rates.impressions, c.rates.channel))
        model_channels = [c.rates.channel for c in by_volume[: self._max_model_channels]]
        weeks = customer_weeks(events, spec.bands, model_channels, remarks)
        summary = dataclasses.replace(
            log.summary,
            customer_weeks=weeks.frame.height,
            weeks=weeks.calendar_weeks,
            customer_weeks_without_contacts=weeks.without_contacts,
        )

        report(0.45, "Testing frequency bands for fatigue")
        bands = band_stats(weeks.frame, spec.bands, weeks.strata)
        fatigue, choice = fatigue_test(bands, spec)
        per_channel = channel_fatigue(weeks, channels, log.channel_codes, spec)
        population = "all customer-weeks"
        refined = within_channel_caps(weeks, per_channel, model_channels, spec)
        if refined is not None:
            fatigue, choice = refined
            population = "customer-weeks within the channel caps"
            remarks.notes.append(
                "Channels fatigue at different frequencies, so the global cap was measured on the "
                "customer-weeks that respect the channel caps."
            )
        channels, stricter_channel_caps = with_channel_caps(channels, per_channel, choice, spec)

        report(0.55, "Measuring gaps between contacts")
        # With frequency fatigue, short gaps and high weekly frequency go together; testing spacing
        # only within the recommended cap keeps the cooldown from re-discovering the same fatigue.
        cooldown_scope = choice.cap if choice.fatigue_detected else None
        gaps = gap_buckets(events, self._attribution_days, cooldown_scope)
        cooldown = detect_cooldown(
            gaps,
            alpha=spec.alpha,
            min_samples=spec.min_samples_per_band,
            attribution_days=self._attribution_days,
        )

        report(0.7, "Fitting the conversion model")
        model = fit_conversion_model(
            weeks.frame,
            model_channels,
            min_samples=spec.min_samples_per_band,
            random_state=spec.random_state,
            max_rows=self._max_model_rows,
            remarks=remarks,
        )

        report(0.9, "Building recommendations")
        recommended = recommendations(
            spec, choice, fatigue, cooldown, cooldown_scope, stricter_channel_caps, model
        )
        data_notes(spec, summary, channels, fatigue, choice, cooldown, recommended, remarks)
        result = PolicyAnalysisResult(
            summary=summary,
            frequency_bands=tuple(band_summary(b, spec.min_samples_per_band) for b in bands),
            fatigue=fatigue.finding(),
            fatigue_population=population,
            channels=tuple(channels),
            cooldown=cooldown.finding(gaps, spec.min_samples_per_band, cooldown_scope),
            model=model,
            recommended_weekly_cap=choice.cap,
            recommendations=tuple(recommended),
            notes=tuple(remarks.notes),
            warnings=tuple(remarks.warnings),
        )
        report(1.0, "Done")
        return result
