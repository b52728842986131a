"""The few lines an offline command prints about its result, read from the wire document it writes
(so the summary never says what the file does not)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_DIRECTION_MARK = {"helps": "+", "hurts": "-"}


def _fmt(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _warnings(document: Mapping[str, Any]) -> list[str]:
    return [f"warning: {w}" for w in document.get("warnings", [])]


def training_summary(response: Mapping[str, Any]) -> str:
    m = response["metrics"]
    evaluated = (
        f"{m['validationSamples']} validation rows"
        if m["evaluatedOn"] == "validation"
        else "the training rows (no validation split)"
    )
    top = [f for f in response["featureImportance"] if f["selected"]][:5]
    lines = [
        f"trained {m['numTrees']} trees on {m['trainingSamples']} rows; metrics on {evaluated}",
        f"AUC {_fmt(m['auc'])}  logloss {_fmt(m['logloss'])}  accuracy {_fmt(m['accuracy'], 3)}  "
        f"precision {_fmt(m['precision'], 3)}  recall {_fmt(m['recall'], 3)}  "
        f"positive rate {_fmt(m['positiveRate'], 3)}",
        "top features: " + (", ".join(f"{f['field']} {f['importance']:.3f}" for f in top) or "none"),
    ]
    calibration = m.get("calibration")
    if calibration is not None:
        lines.append(
            f"calibrated ({calibration['method']}, fitted on {calibration['fittedOn']} held-out rows): "
            f"ECE {_fmt(calibration['eceBefore'])} -> {_fmt(calibration['eceAfter'])}, "
            f"Brier {_fmt(calibration['brierBefore'])} -> {_fmt(calibration['brierAfter'])} (out-of-fold)"
        )
    folds = m.get("crossValidation")
    if folds is not None:
        lines.append(
            f"cross-validated over {folds['folds']} folds: AUC {_fmt(folds['aucMean'])} +- "
            f"{_fmt(folds['aucStd'])}, logloss {_fmt(folds['loglossMean'])} +- {_fmt(folds['loglossStd'])}"
        )
    lines.extend(_warnings(response))
    return "\n".join(lines)


def segmentation_summary(result: Mapping[str, Any]) -> str:
    lines = [
        f"{result['algorithm']}: k={result['k']}, silhouette {_fmt(result.get('silhouette'), 3)}, "
        f"{result['rowCount']} rows, fields: {', '.join(result['fieldsUsed'])}",
    ]
    for segment in result["segments"]:
        lines.append(f"  {segment['size']:>8}  {segment['share']:6.1%}  {segment['name']}")
    lines.extend(_warnings(result))
    return "\n".join(lines)


def policy_summary(result: Mapping[str, Any]) -> str:
    cap = result.get("recommendedWeeklyCap")
    lines = [f"recommended weekly cap: {cap if cap is not None else 'none (not enough evidence)'}"]
    recommendations = result.get("recommendations", [])
    lines.append(f"recommendations ({len(recommendations)}):")
    for item in recommendations:
        confidence = item.get("confidence")
        suffix = f" (confidence {confidence:.2f})" if isinstance(confidence, int | float) else ""
        lines.append(f"  - {item['title']}{suffix}")
    # The notes say why a recommendation is missing (no cap, no fatigue, not enough evidence).
    notes = result.get("notes") or []
    if notes:
        lines.append("notes:")
        lines.extend(f"  - {note}" for note in notes)
    lines.extend(_warnings(result))
    return "\n".join(lines)


def content_summary(result: Mapping[str, Any], target: str) -> str:
    terms = result.get("topTerms", [])
    lines = [f"top terms for {target} ({len(terms)}; + helps, - hurts):"]
    for term in terms[:15]:
        mark = _DIRECTION_MARK.get(term.get("direction", ""), " ")
        lines.append(f"  {mark} {term['term']:<30} {term['importance']:.4f}")
    recommendations = result.get("recommendations", [])
    if recommendations:
        lines.append("recommendations:")
        lines.extend(f"  - {item['title']}" for item in recommendations)
    lines.extend(_warnings(result))
    return "\n".join(lines)


def drift_summary(result: Mapping[str, Any]) -> str:
    fields = result.get("fields", [])
    drifted = sum(1 for item in fields if item.get("status") == "drifted")
    lines = [f"drift of {result.get('rows')} rows: {drifted} of {len(fields)} fields drifted"]
    for item in sorted(fields, key=lambda entry: -entry["psi"]):
        lines.append(f"  {item['field']:<30} PSI {item['psi']:8.4f}  {item['status']}")
    score = result.get("score")
    if score:
        lines.append(f"  {'(score)':<30} PSI {score['psi']:8.4f}  {score['status']}")
    recommendations = result.get("recommendations", [])
    if recommendations:
        lines.append("recommendations:")
        lines.extend(f"  - {item['title']}" for item in recommendations)
    lines.extend(f"note: {note}" for note in result.get("notes") or [])
    lines.extend(_warnings(result))
    return "\n".join(lines)
