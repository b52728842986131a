"""Drift analysis: how far new rows have moved from a model's training distribution.

Pure rules only: the request (spec), what an analysis finds (result) and the advice drawn from it
(recommendations). PSI, KS and the status thresholds are the model reference's own
(domain/gbm/reference.py); the counting and the scoring live in adapters/drift/.
"""

from domain.drift.result import DriftAnalysisResult
from domain.drift.spec import DriftSpec, validate_drift_spec

__all__ = ["DriftAnalysisResult", "DriftSpec", "validate_drift_spec"]
