"""What a drift analysis finds: each reference field's drift, the score's, the model's performance on
labelled new rows against its training figures, and the advice drawn from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["stable", "watch", "drifted"]
Action = Literal["retrain", "watch"]
Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class FieldDrift:
    """One input field. `ks` is None for a categorical field, or when either side has no value."""

    field: str
    kind: Kind  # as the reference records it
    psi: float
    ks: float | None
    missing_share_change: float  # the new rows' missing share minus the reference's
    status: Status


@dataclass(frozen=True)
class ScoreDrift:
    psi: float
    ks: float | None
    status: Status


@dataclass(frozen=True)
class Metrics:
    auc: float | None  # None when the rows hold one class only
    logloss: float
    ece: float


@dataclass(frozen=True)
class Performance:
    """The model's score on the labelled new rows, and the reference's figures from training (None
    when the reference records none)."""

    rows: int
    metrics: Metrics
    training: Metrics | None


@dataclass(frozen=True)
class FieldEvidence:
    field: str
    psi: float
    ks: float | None
    status: Status


@dataclass(frozen=True)
class ScoreEvidence:
    psi: float
    ks: float | None
    status: Status


@dataclass(frozen=True)
class AucEvidence:
    auc: float
    training_auc: float
    change: float
    rows: int


@dataclass(frozen=True)
class DriftRecommendation:
    action: Action
    title: str
    description: str
    evidence: FieldEvidence | ScoreEvidence | AucEvidence


@dataclass(frozen=True)
class DriftAnalysisResult:
    rows: int
    fields: tuple[FieldDrift, ...]
    score: ScoreDrift | None  # None when only a reference was sent: no trees to score with
    performance: Performance | None  # with a label and a model only
    recommendations: tuple[DriftRecommendation, ...]
    notes: tuple[str, ...]
