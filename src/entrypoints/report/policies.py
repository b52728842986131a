"""The report of a contact-policy analysis (`/analyze/policies`' result)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from entrypoints.report import plots
from entrypoints.report.page import Page, describe_recommendation


def policies_page(result: Mapping[str, Any]) -> Page:
    summary: Mapping[str, Any] = result.get("summary") or {}
    cap = result.get("recommendedWeeklyCap")
    page = Page(
        "Contact policy",
        f"{summary.get('rows', '?')} interactions; recommended weekly cap: {'none' if cap is None else cap}",
    )
    bands = result.get("frequencyBands") or []
    if bands:
        page.section("Conversion by weekly contact frequency")
        page.text(
            "Bars are 95% intervals; the dashed line is the recommended weekly cap (bands past it are "
            "grey, bands without customer-weeks are left out).",
            "note",
        )
        page.charts(
            _band_chart(bands, "conversionRate", "conversionRateCi", "customer-weeks with a conversion", cap),
            _band_chart(
                bands, "conversionPerContact", "conversionPerContactCi", "conversions per contact", cap
            ),
        )
        page.table(
            [
                "band",
                "customer-weeks",
                "contacts",
                "conversions",
                "conversion rate",
                "per contact",
                "enough data",
            ],
            [
                (
                    b.get("band"),
                    b.get("customerWeeks"),
                    b.get("contacts"),
                    b.get("conversions"),
                    b.get("conversionRate"),
                    b.get("conversionPerContact"),
                    b.get("sufficient"),
                )
                for b in bands
            ],
        )
    channels = result.get("channels") or []
    if channels:
        page.section("Channels")
        keys = [
            k for k in ("channel", "impressions", "clicks", "conversions", "ctr", "cvr") if k in channels[0]
        ]
        page.table(keys, [[c.get(k) for k in keys] for c in channels])
    _recommendations(page, result)
    return page


def _band_chart(
    bands: Sequence[Mapping[str, Any]], key: str, interval: str, ylabel: str, cap: int | None
) -> str:
    drawn = [b for b in bands if (b.get("customerWeeks") or 0) > 0]  # an empty band has no rate
    fig, axes = plots.figure(4.6, 3.2)
    values = [float(b.get(key) or 0.0) for b in drawn]
    bounds = [b.get(interval) or {} for b in drawn]
    low = [max(0.0, v - float(ci.get("lower", v))) for v, ci in zip(values, bounds, strict=True)]
    high = [max(0.0, float(ci.get("upper", v)) - v) for v, ci in zip(values, bounds, strict=True)]
    past_cap = [cap is not None and (b.get("minContacts") or 0) > cap for b in drawn]
    axes.bar(
        range(len(drawn)),
        values,
        yerr=[low, high],
        capsize=3,
        color=["#bbb" if past else plots.NEUTRAL for past in past_cap],
    )
    axes.set_xticks(range(len(drawn)), [str(b.get("band")) for b in drawn])
    if cap is not None:
        within = sum(1 for past in past_cap if not past)
        axes.axvline(within - 0.5, color=plots.HURTS, linestyle="--", linewidth=0.9)
        axes.text(within - 0.55, axes.get_ylim()[1] * 0.95, f"cap {cap}/week", ha="right", color=plots.HURTS)
    axes.set_xlabel("contacts per week")
    axes.set_ylabel(ylabel)
    return plots.svg(fig)


def _recommendations(page: Page, result: Mapping[str, Any]) -> None:
    recommendations = result.get("recommendations") or []
    page.section(f"Recommendations ({len(recommendations)})")
    page.bullets(describe_recommendation(r) for r in recommendations)
    page.bullets(result.get("notes") or [], "note")
    page.bullets(result.get("warnings") or [], "warning")
