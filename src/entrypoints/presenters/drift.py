"""Drift analysis on the wire: a `DriftAnalysisRequest` to its spec, and the result as openapi.yaml's
DriftAnalysisResult spells it."""

from __future__ import annotations

from typing import Any

from domain.drift.result import (
    AucEvidence,
    DriftAnalysisResult,
    DriftRecommendation,
    FieldDrift,
    FieldEvidence,
    Metrics,
    Performance,
    ScoreDrift,
    ScoreEvidence,
)
from domain.drift.spec import DriftSpec
from entrypoints import contract as c
from entrypoints.presenters.wire import WireNames

# model_state -> modelState; the model's own keys below it keep their snake_case
# (`modelState.reference.fields`), as the model document spells them.
DRIFT_NAMES = WireNames(DriftSpec)


def drift_spec(body: c.DriftAnalysisRequest) -> DriftSpec:
    return DriftSpec(model_state=body.modelState, reference=body.reference, label=body.label)


def present_drift_analysis(result: DriftAnalysisResult) -> dict[str, Any]:
    # model_construct: the domain types are already checked (validating would turn integer counts
    # into floats).
    document = c.DriftAnalysisResult.model_construct(
        rows=result.rows,
        fields=[_field(item) for item in result.fields],
        score=_score(result.score),
        performance=_performance(result.performance),
        recommendations=[_recommendation(item) for item in result.recommendations],
        notes=[DRIFT_NAMES.message(note) for note in result.notes],
    )
    presented: dict[str, Any] = document.model_dump()
    return presented


def _field(item: FieldDrift) -> c.Field1:
    return c.Field1.model_construct(
        field=item.field,
        kind=item.kind,
        psi=item.psi,
        ks=item.ks,
        missingShareChange=item.missing_share_change,
        status=item.status,
    )


def _score(score: ScoreDrift | None) -> c.Score | None:
    return None if score is None else c.Score.model_construct(psi=score.psi, ks=score.ks, status=score.status)


def _metrics(metrics: Metrics | None) -> c.DriftMetrics | None:
    if metrics is None:
        return None
    return c.DriftMetrics.model_construct(auc=metrics.auc, logloss=metrics.logloss, ece=metrics.ece)


def _performance(performance: Performance | None) -> c.Performance | None:
    if performance is None:
        return None
    return c.Performance.model_construct(
        rows=performance.rows,
        auc=performance.metrics.auc,
        logloss=performance.metrics.logloss,
        ece=performance.metrics.ece,
        training=_metrics(performance.training),
    )


def _recommendation(item: DriftRecommendation) -> c.Recommendation1:
    return c.Recommendation1.model_construct(
        type="model",
        action=item.action,
        title=item.title,
        description=item.description,
        evidence=_evidence(item.evidence),
    )


def _evidence(evidence: FieldEvidence | ScoreEvidence | AucEvidence) -> dict[str, Any]:
    if isinstance(evidence, AucEvidence):
        return {
            "auc": evidence.auc,
            "trainingAuc": evidence.training_auc,
            "change": evidence.change,
            "rows": evidence.rows,
        }
    found = {"psi": evidence.psi, "ks": evidence.ks, "status": evidence.status}
    return {"field": evidence.field, **found} if isinstance(evidence, FieldEvidence) else found
