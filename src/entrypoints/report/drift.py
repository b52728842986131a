"""The report of a drift analysis (`/analyze/drift`' result)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from entrypoints.report import plots
from entrypoints.report.page import Page, describe_recommendation

_STATUS_COLORS = {"stable": plots.HELPS, "watch": "#e0a800", "drifted": plots.HURTS}


def drift_page(result: Mapping[str, Any]) -> Page:
    fields = result.get("fields") or []
    score: Mapping[str, Any] = result.get("score") or {}
    drifted = [f["field"] for f in fields if f.get("status") == "drifted"]
    page = Page(
        "Drift against the training reference",
        f"{result.get('rows', '?')} new rows; {len(drifted)} of {len(fields)} fields drifted"
        + (
            f"; score PSI {score['psi']:.3f} ({score.get('status')})"
            if isinstance(score.get("psi"), float)
            else ""
        ),
    )
    if fields:
        page.section("Population stability index by field")
        page.text("PSI below 0.1 is stable, 0.1 to 0.25 worth watching, 0.25 and above drifted.", "note")
        ranked = sorted(fields, key=lambda f: -float(f.get("psi") or 0.0))
        fig, axes = plots.figure(6.0, max(1.6, 0.28 * len(ranked) + 0.8))
        positions = list(range(len(ranked)))[::-1]
        axes.barh(
            positions,
            [f.get("psi") or 0.0 for f in ranked],
            color=[_STATUS_COLORS.get(str(f.get("status")), plots.NEUTRAL) for f in ranked],
        )
        axes.set_yticks(positions, [f["field"] for f in ranked])
        for threshold in (0.1, 0.25):
            axes.axvline(threshold, color="#777", linestyle="--", linewidth=0.7)
        axes.set_xlabel("PSI")
        page.charts(plots.svg(fig))
        page.table(
            ["field", "kind", "PSI", "KS", "missing share change", "status"],
            [
                (
                    f["field"],
                    f.get("kind"),
                    f.get("psi"),
                    f.get("ks"),
                    f.get("missingShareChange"),
                    f.get("status"),
                )
                for f in ranked
            ],
        )
    performance = result.get("performance")
    if performance:
        training = performance.get("training") or {}
        page.section("Performance on the new rows")
        page.table(
            ["", "new rows", "training"],
            [(key, performance.get(key), training.get(key)) for key in ("auc", "logloss", "ece")],
        )
    recommendations = result.get("recommendations") or []
    page.section(f"Recommendations ({len(recommendations)})")
    page.bullets(describe_recommendation(r) for r in recommendations)
    page.bullets(result.get("notes") or [], "note")
    page.bullets(result.get("warnings") or [], "warning")
    return page
