"""Content analysis with scikit-learn: TF-IDF terms of each creative, a Random Forest predicting its
click-through (or conversion) rate, importances mapped back to terms with a direction.

The steps, one module each: creatives (the rows, their exclusions and summaries), text and terms
(what the copy says), forest (the model), flags (each creative against its channel). Only text
preparation and prediction grow with the row count; the forest's cost is capped (forest.py).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl
import scipy.sparse as sp

from adapters.compute.cpu_budget import task_threads
from adapters.content.creatives import (
    Creatives,
    channel_summaries,
    creative_standings,
    exclusion_reasons,
    read_creatives,
)
from adapters.content.flags import channel_standing
from adapters.content.forest import ForestSettings, fit_relative_rates
from adapters.content.terms import term_counts, term_features, term_insights
from adapters.frames import FrameDataset
from application.ports import ContentAnalyzer
from domain.content.recommendations import build_recommendations
from domain.content.result import ContentAnalysisResult, ExclusionReason, ModelQuality, TermInsight
from domain.content.spec import ContentSpec, present_text_fields, validate_content_spec
from domain.errors import InsufficientData, field_error
from domain.progress import ProgressReporter, StageProgress

# Below this many creatives a forest over words says nothing a reader should act on.
MIN_MODEL_CREATIVES = 20
# Valid creatives left out of the model for these reasons still have a defined, well-measured target.
_RATED_REASONS = frozenset({None, ExclusionReason.EMPTY_TEXT})


class SklearnContentAnalyzer(ContentAnalyzer[pl.DataFrame]):
    def __init__(self, settings: ForestSettings | None = None, n_jobs: int | None = None) -> None:
        self._settings = settings or ForestSettings()
        self._n_jobs = n_jobs

    def analyze(
        self, dataset: FrameDataset, spec: ContentSpec, progress: ProgressReporter
    ) -> ContentAnalysisResult:
        validate_content_spec(spec, dataset.schema)
        progress(0.0, "checking creatives")
        frame = dataset.frame
        text_fields = present_text_fields(spec, dataset.schema)
        warnings: list[str] = []
        missing_text = [name for name in spec.text_fields if name not in text_fields]
        if missing_text:
            warnings.append(f"text fields not in the data, ignored: {', '.join(missing_text)}")
        creatives = read_creatives(frame, spec, warnings)
        reason = exclusion_reasons(creatives, spec, warnings)
        counts, vocabulary = self._count_terms(frame.select(text_fields), reason, progress)

        # Valid creatives appear in every summary; eligible ones also have a defined, well-measured
        # target (percentile, flags); modelled ones also have text.
        valid = np.array([r is None or not r.invalidates for r in reason])
        eligible = np.array([r in _RATED_REASONS for r in reason])
        model_rows = np.flatnonzero(np.array([r is None for r in reason]))
        excluded = tuple(
            sorted(Counter(r for r in reason if r is not None).items(), key=lambda item: item[0].value)
        )
        if len(model_rows) < MIN_MODEL_CREATIVES:
            by_reason = ", ".join(f"{r.value} {n}" for r, n in excluded)
            raise InsufficientData(
                f"{len(model_rows)} creatives have at least {spec.min_impressions} impressions, a "
                f"defined {spec.target} and some text; the model needs {MIN_MODEL_CREATIVES}",
                [field_error("min_impressions", f"excluded rows by reason: {by_reason}")],
            )

        summaries = channel_summaries(creatives, valid)
        low_volume = valid & (creatives.impressions < spec.min_impressions)
        standing = channel_standing(
            creatives.channels, creatives.numerator, creatives.denominator, low_volume, eligible
        )
        model, insights = self._model(creatives, model_rows, counts, vocabulary, spec, warnings, progress)

        underperformers = {
            channel: [creatives.id_of(i) for i in rows] for channel, rows in standing.underperformers.items()
        }
        recommendations = build_recommendations(
            insights, spec.target, underperformers, Counter(creatives.channels[valid].tolist())
        )
        standings = creative_standings(creatives, valid, standing.percentile, standing.flags)
        progress(1.0, "done")
        return ContentAnalysisResult(
            top_terms=insights,
            channel_summary=summaries,
            creatives=standings,
            model=model,
            excluded=excluded,
            recommendations=recommendations,
            warnings=tuple(warnings),
        )

    def _count_terms(
        self, texts: pl.DataFrame, reason: list[ExclusionReason | None], progress: ProgressReporter
    ) -> tuple[sp.csr_matrix, list[str]]:
        """Term counts of the rows still in the model; rows whose text yields no token are marked
        as empty text."""
        rows = np.flatnonzero(np.array([r is None for r in reason]))
        # Selecting columns shares their buffers; gathering rows copies every text, so only when needed.
        if len(rows) < texts.height:
            texts = texts[rows]
        counts, vocabulary, has_text = term_counts(
            texts,
            min_df=2,
            max_terms=self._settings.max_vocabulary,
            progress=StageProgress(progress, 0.02, 0.15),
        )
        for i in rows[~has_text].tolist():
            reason[i] = ExclusionReason.EMPTY_TEXT
        return counts[has_text], vocabulary

    def _model(
        self,
        creatives: Creatives,
        rows: np.ndarray,
        counts: sp.csr_matrix,
        vocabulary: list[str],
        spec: ContentSpec,
        warnings: list[str],
        progress: ProgressReporter,
    ) -> tuple[ModelQuality, tuple[TermInsight, ...]]:
        features = term_features(counts, vocabulary, progress)
        numerator = creatives.numerator[rows]
        denominator = creatives.denominator[rows]
        fit = fit_relative_rates(
            features.tfidf,
            creatives.channels[rows],
            numerator,
            denominator,
            target=spec.target,
            random_state=spec.random_state,
            settings=self._settings,
            n_jobs=task_threads(self._n_jobs),
            progress=progress,
        )
        if fit.holdout_creatives < 100:
            warnings.append(f"model quality rests on {fit.holdout_creatives} held-out creatives only")
        if fit.r2 is not None and fit.r2 < 0.05:
            warnings.append(
                f"the text explains little of the {spec.target} (held-out R2 {fit.r2:.3f}): "
                "treat the terms as hints"
            )
        n_terms = len(features.vocabulary)
        insights = term_insights(
            features, fit.importances[:n_terms], numerator, denominator * fit.channel_rate, spec.top_terms
        )
        if not insights:
            warnings.append("no term improved the model")
        model = ModelQuality(
            target=spec.target,
            r2=fit.r2,
            r2_kind="holdout",
            creatives=len(rows),
            train_creatives=fit.train_creatives,
            holdout_creatives=fit.holdout_creatives,
            terms=n_terms,
            trees=fit.trees,
            channel_importance=float(fit.importances[n_terms:].sum()),
        )
        return model, insights
