"""The drift analysis over a polars frame: each reference field's buckets counted at numpy speed,
PSI, KS and status by the reference's own pure rules (domain/gbm/reference.py), the score
distribution from the batch scorer, and performance when a label is given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import polars as pl

from adapters.drift.buckets import binned_counts, field_counts
from adapters.drift.performance import labelled_performance
from adapters.frames import FrameDataset
from adapters.gbm.batch_scorer import BatchScorer
from application.ports import DriftAnalyzer
from domain.drift.recommendations import build_recommendations
from domain.drift.result import DriftAnalysisResult, FieldDrift, Kind, Performance, ScoreDrift, Status
from domain.drift.spec import DriftSpec, drift_reference
from domain.gbm.reference import measure
from domain.progress import ProgressReporter, StageProgress


class PolarsDriftAnalyzer(DriftAnalyzer[pl.DataFrame]):
    def analyze(
        self, dataset: FrameDataset, spec: DriftSpec, progress: ProgressReporter
    ) -> DriftAnalysisResult:
        frame = dataset.frame
        reference = drift_reference(spec)
        notes: list[str] = []
        fields = []
        for done, field in enumerate(reference["fields"]):
            fields.append(field_drift(field, frame.get_column(field["name"])))
            progress(0.4 * (done + 1) / len(reference["fields"]), "comparing fields with the reference")
        score: ScoreDrift | None = None
        performance: Performance | None = None
        if spec.model_state is None:
            notes.append(
                "only a `reference` was sent: no trees to score with, so the score's drift is not measured"
            )
            if spec.label is not None:
                notes.append(
                    "`label` is ignored without a `model_state`: performance needs the model's scores"
                )
        else:
            scored = BatchScorer(spec.model_state).score_frame(frame, StageProgress(progress, 0.4, 0.9))
            score = score_drift(reference["score"], scored.score)
            if spec.label is not None:
                performance, unlabelled = labelled_performance(frame, spec.label, scored.score, reference)
                if unlabelled:
                    notes.append(f"{unlabelled} row(s) without a `label` value are left out of performance")
                if performance is not None and performance.training is None:
                    notes.append("the reference records no training performance to compare with")
        progress(0.95, "drawing recommendations")
        return DriftAnalysisResult(
            rows=frame.height,
            fields=tuple(fields),
            score=score,
            performance=performance,
            recommendations=build_recommendations(fields, score, performance),
            notes=tuple(notes),
        )


def field_drift(field: Mapping[str, Any], column: pl.Series) -> FieldDrift:
    drift = measure(field, field_counts(field, column))
    assert drift.missing_share_change is not None  # a field has a missing bucket
    return FieldDrift(
        field=field["name"],
        kind=cast(Kind, field["kind"]),
        psi=drift.psi,
        ks=drift.ks,
        missing_share_change=drift.missing_share_change,
        status=cast(Status, drift.status),
    )


def score_drift(block: Mapping[str, Any], scores: np.ndarray) -> ScoreDrift:
    drift = measure(block, binned_counts(block["edges"], scores))
    return ScoreDrift(psi=drift.psi, ks=drift.ks, status=cast(Status, drift.status))
