"""Charts as inline SVG (matplotlib, no browser library and no CDN): the page stays one file that
opens anywhere, offline."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display: a worker or a CI runner has none

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

plt.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: smaller, searchable, and the page's font
        "svg.hashsalt": "ml-worker",  # the same result gives the same bytes
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)
HELPS, HURTS, NEUTRAL = "#2e7d32", "#c62828", "#1f77b4"


def svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # without the XML prologue, to sit inside HTML


def figure(width: float = 6.0, height: float = 3.2) -> tuple[Figure, Axes]:
    fig, axes = plt.subplots(figsize=(width, height))
    return fig, axes


def horizontal_bars(
    labels: Sequence[str], values: Sequence[float], *, colors: Sequence[str] | None = None, xlabel: str = ""
) -> str:
    fig, axes = figure(6.0, max(1.6, 0.28 * len(labels) + 0.8))
    positions = list(range(len(labels)))[::-1]
    axes.barh(positions, values, color=list(colors) if colors else NEUTRAL)
    axes.set_yticks(positions, labels)
    axes.set_xlabel(xlabel)
    axes.axvline(0, color="#555", linewidth=0.6)
    return svg(fig)


def line(
    xs: Sequence[float],
    ys: Sequence[float],
    *,
    xlabel: str,
    ylabel: str,
    diagonal: bool = False,
    label: str | None = None,
) -> str:
    fig, axes = figure(4.2, 3.6)
    if diagonal:
        axes.plot(
            [0, 1], [0, 1], linestyle="--", color="#999", linewidth=0.8, label="ideal" if label else None
        )
    axes.plot(xs, ys, marker="o" if len(xs) <= 12 else None, markersize=3, color=NEUTRAL, label=label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if diagonal:
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
    if label:
        axes.legend(frameon=False)
    return svg(fig)


def reliability(curves: Sequence[tuple[str, Mapping[str, Sequence[float]]]]) -> str:
    """Reliability curves (mean score -> share of positives per bin) against the diagonal."""
    fig, axes = figure(4.2, 3.6)
    axes.plot([0, 1], [0, 1], linestyle="--", color="#999", linewidth=0.8, label="ideal")
    for (label, curve), color in zip(curves, (NEUTRAL, HELPS, HURTS), strict=False):
        axes.plot(curve["predicted"], curve["observed"], marker="o", markersize=3, color=color, label=label)
    axes.set_xlabel("mean predicted probability")
    axes.set_ylabel("observed positive rate")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend(frameon=False)
    return svg(fig)
