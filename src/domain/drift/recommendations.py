"""How drift becomes advice: retrain when a field or the score drifted (PSI >= 0.25) or the AUC fell
by more than AUC_DECAY against training; watch the fields in between (0.1 <= PSI < 0.25)."""

from __future__ import annotations

from collections.abc import Sequence

from domain.drift.result import (
    AucEvidence,
    DriftRecommendation,
    FieldDrift,
    FieldEvidence,
    Performance,
    ScoreDrift,
    ScoreEvidence,
)

# An AUC this much below the training figure is decay worth retraining for, not sampling noise of a
# few thousand labelled rows (its standard error there is about 0.01).
AUC_DECAY = 0.05
# The most fields named one by one, per action; the worst first.
MAX_FIELD_ADVICE = 10


def build_recommendations(
    fields: Sequence[FieldDrift], score: ScoreDrift | None, performance: Performance | None
) -> tuple[DriftRecommendation, ...]:
    ranked = sorted(fields, key=lambda item: -item.psi)
    drifted = [item for item in ranked if item.status == "drifted"]
    watched = [item for item in ranked if item.status == "watch"]
    advice = [_field_advice(item, "retrain") for item in drifted[:MAX_FIELD_ADVICE]]
    if score is not None and score.status == "drifted":
        advice.append(
            DriftRecommendation(
                action="retrain",
                title=f"Retrain: the score distribution drifted, PSI {score.psi:.2f}",
                description=(
                    f"The model's scores on the new rows are distributed unlike on its validation rows "
                    f"(PSI {score.psi:.2f}{_ks(score.ks)}): the population it scores has changed."
                ),
                evidence=ScoreEvidence(psi=score.psi, ks=score.ks, status=score.status),
            )
        )
    decay = _auc_decay(performance)
    if decay is not None:
        advice.append(decay)
    advice += [_field_advice(item, "watch") for item in watched[:MAX_FIELD_ADVICE]]
    if score is not None and score.status == "watch":
        advice.append(
            DriftRecommendation(
                action="watch",
                title=f"Watch: the score distribution shifted, PSI {score.psi:.2f}",
                description=f"The scores moved (PSI {score.psi:.2f}{_ks(score.ks)}), short of drift.",
                evidence=ScoreEvidence(psi=score.psi, ks=score.ks, status=score.status),
            )
        )
    return tuple(advice)


def _field_advice(item: FieldDrift, action: str) -> DriftRecommendation:
    evidence = FieldEvidence(field=item.field, psi=item.psi, ks=item.ks, status=item.status)
    if action == "retrain":
        return DriftRecommendation(
            action="retrain",
            title=f"Retrain: {item.field} drifted, PSI {item.psi:.2f}",
            description=(
                f"{item.field} is distributed unlike in training (PSI {item.psi:.2f}{_ks(item.ks)}, "
                f"missing share {_signed_points(item.missing_share_change)}): retrain on recent rows."
            ),
            evidence=evidence,
        )
    return DriftRecommendation(
        action="watch",
        title=f"Watch: {item.field} shifted, PSI {item.psi:.2f}",
        description=(
            f"{item.field} moved from its training distribution (PSI {item.psi:.2f}{_ks(item.ks)}), "
            "short of drift: check it again on the next batch."
        ),
        evidence=evidence,
    )


def _auc_decay(performance: Performance | None) -> DriftRecommendation | None:
    if performance is None or performance.training is None:
        return None
    auc, trained = performance.metrics.auc, performance.training.auc
    if auc is None or trained is None or trained - auc <= AUC_DECAY:
        return None
    return DriftRecommendation(
        action="retrain",
        title=f"Retrain: AUC fell from {trained:.3f} to {auc:.3f}",
        description=(
            f"On {performance.rows:,} labelled new rows the model ranks outcomes worse than in training "
            f"(AUC {auc:.3f} against {trained:.3f}, more than {AUC_DECAY} lower)."
        ),
        evidence=AucEvidence(auc=auc, training_auc=trained, change=auc - trained, rows=performance.rows),
    )


def _ks(ks: float | None) -> str:
    return "" if ks is None else f", KS {ks:.2f}"


def _signed_points(change: float) -> str:
    return f"{change * 100:+.1f} points"
