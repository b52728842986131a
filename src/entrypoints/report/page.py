"""One self-contained HTML page: a title, sections of text, tables and inline SVG charts."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 62rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
td, th { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
.charts svg { max-width: 100%; height: auto; }
.note { color: #555; } .warning { color: #8a4b00; }
"""


def number(value: object, digits: int = 3) -> str:
    """A figure as a reader wants it: integers whole, others to `digits` significant places."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.{digits}g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def describe_recommendation(recommendation: Mapping[str, object]) -> str:
    title = recommendation.get("title") or recommendation.get("message") or recommendation.get("action") or ""
    confidence = recommendation.get("confidence")
    return f"{title} (confidence {confidence:.2f})" if isinstance(confidence, float) else str(title)


@dataclass
class Page:
    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)

    def section(self, heading: str) -> None:
        self.parts.append(f"<h2>{html.escape(heading)}</h2>")

    def text(self, line: str, css: str = "") -> None:
        attribute = f' class="{css}"' if css else ""
        self.parts.append(f"<p{attribute}>{html.escape(line)}</p>")

    def bullets(self, lines: Iterable[str], css: str = "") -> None:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        if items:
            attribute = f' class="{css}"' if css else ""
            self.parts.append(f"<ul{attribute}>{items}</ul>")

    def table(self, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
        body = "".join(
            "<tr>"
            + "".join(
                f'<td class="n">{html.escape(number(cell))}</td>'
                if isinstance(cell, int | float) and not isinstance(cell, bool)
                else f"<td>{html.escape(number(cell))}</td>"
                for cell in row
            )
            + "</tr>"
            for row in rows
        )
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def charts(self, *svgs: str) -> None:
        self.parts.append('<div class="charts">' + "".join(svgs) + "</div>")

    def render(self) -> str:
        subtitle = f'<p class="note">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>{subtitle}{''.join(self.parts)}</body></html>\n"
        )
