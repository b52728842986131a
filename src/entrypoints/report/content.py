"""The report of a content analysis (`/analyze/content`' result)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from entrypoints.report import plots
from entrypoints.report.page import Page, describe_recommendation, number


def content_page(result: Mapping[str, Any]) -> Page:
    model: Mapping[str, Any] = result.get("model") or {}
    page = Page(
        "Content analysis",
        f"target {model.get('target', '?')}; {model.get('creatives', '?')} creatives; "
        f"{model.get('r2Kind', '')} R² {number(model.get('r2'))}",
    )
    terms = result.get("topTerms") or []
    if terms:
        page.section("Top terms")
        page.text(
            "Importance in the forest, signed by direction: green helps the target, red hurts it.", "note"
        )
        signed = [t["importance"] * (1 if t.get("direction") == "helps" else -1) for t in terms]
        colors = [plots.HELPS if t.get("direction") == "helps" else plots.HURTS for t in terms]
        page.charts(
            plots.horizontal_bars(
                [t["term"] for t in terms], signed, colors=colors, xlabel="importance (signed)"
            )
        )
        page.table(
            ["term", "direction", "importance", "support", "lift"],
            [
                (t["term"], t.get("direction"), t.get("importance"), t.get("support"), t.get("lift"))
                for t in terms
            ],
        )
    channels = result.get("channelSummary") or []
    if channels:
        page.section("Channels")
        keys = list(channels[0].keys())
        page.table(keys, [[c.get(k) for k in keys] for c in channels])
    recommendations = result.get("recommendations") or []
    page.section(f"Recommendations ({len(recommendations)})")
    page.bullets(describe_recommendation(r) for r in recommendations)
    page.bullets(result.get("warnings") or [], "warning")
    return page
