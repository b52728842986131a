"""The report of a segmentation (`/analyze/segments`' result)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from entrypoints.report import plots
from entrypoints.report.page import Page, number


def segments_page(result: Mapping[str, Any]) -> Page:
    segments = result.get("segments") or []
    page = Page(
        "Customer segments",
        f"{result.get('algorithm')}: {len(segments)} segments of {result.get('rowCount')} rows; silhouette "
        f"{number(result.get('silhouette'))}; fields {', '.join(result.get('fieldsUsed') or [])}",
    )
    page.section("Sizes")
    names = [f"{s.get('name')} ({s.get('id')})" for s in segments]
    page.charts(plots.horizontal_bars(names, [s.get("size", 0) for s in segments], xlabel="customers"))
    page.table(
        ["segment", "size", "share"],
        [(n, s.get("size"), s.get("share")) for n, s in zip(names, segments, strict=True)],
    )
    fields = [c["field"] for c in (segments[0].get("characteristics") or [])] if segments else []
    if fields:
        page.section("Profiles against the population")
        page.text(
            "Each cell is the segment's difference from the whole population, in standard deviations "
            "(z) for numbers or in share points for categories.",
            "note",
        )
        grid = np.array([[_difference(s, name) for name in fields] for s in segments], dtype=float)
        page.charts(_heatmap(grid, names, fields))
    candidates = result.get("candidates") or []
    if len(candidates) > 1:
        page.section("Choosing k")
        page.charts(
            plots.line(
                [c["k"] for c in candidates],
                [c.get("silhouette") or 0 for c in candidates],
                xlabel="k",
                ylabel="silhouette",
            )
        )
    page.bullets(result.get("warnings") or [], "warning")
    return page


def _difference(segment: Mapping[str, Any], field: str) -> float:
    for item in segment.get("characteristics") or []:
        if item.get("field") == field:
            value = item.get("difference")
            return float(value) if isinstance(value, int | float) else float("nan")
    return float("nan")


def _heatmap(grid: np.ndarray, rows: list[str], columns: list[str]) -> str:
    fig, axes = plots.figure(min(1.2 + 0.7 * len(columns), 9.5), 0.8 + 0.45 * len(rows))
    limit = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    image = axes.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axes.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    axes.set_yticks(range(len(rows)), rows)
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            dark = abs(value) > 0.6 * limit
            axes.text(
                j,
                i,
                f"{value:+.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )
    fig.colorbar(image, ax=axes, shrink=0.8)
    return plots.svg(fig)
