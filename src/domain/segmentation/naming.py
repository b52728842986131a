"""How a segment is named: the signals that set it apart from the population, turned into words.

Pure rules, testable alone: the adapter measures the signals, this module words them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# A difference under half a standard deviation is not what sets a segment apart.
NAME_MIN_SCORE = 0.5
# From 1.5 standard deviations a plain "high" undersells the difference.
NAME_STRONG_SCORE = 1.5
# A category names a segment only when most of the segment has it.
NAME_MIN_CATEGORY_SHARE = 0.5
NAME_DEFAULT_PARTS = 2
AVERAGE_NAME = "Average profile"

# Field words whose plain "low/high" reads badly: (very low, low, high, very high).
_LEXICON: Mapping[str, tuple[str, str, str, str]] = {
    "age": ("very young", "young", "older", "much older"),
}


@dataclass(frozen=True)
class FeatureSignal:
    """How one field sets a segment apart from the population.

    Numeric field: `score` is the z-score of the segment mean ((segment mean - population mean) /
    population std), `category` is None. Categorical field: `score` is the same z-score for the
    indicator of `category`, and `segment_share` the share of the segment with that category.
    """

    field: str
    score: float
    category: str | None = None
    segment_share: float | None = None


def humanize(field: str) -> str:
    """`total_spend`, `totalSpend`, `Total-Spend` -> `total spend`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", field)
    return " ".join(re.sub(r"[_\-.]+", " ", spaced).split()).lower()


def describe_signal(signal: FeatureSignal) -> str | None:
    """The words for one signal ("high income", "young", "region: north"), or None when too weak."""
    if signal.category is not None:
        share = signal.segment_share if signal.segment_share is not None else 0.0
        # Under-represented categories are not named: "not north" says little about who is there.
        if signal.score < NAME_MIN_SCORE or share < NAME_MIN_CATEGORY_SHARE:
            return None
        return f"{humanize(signal.field)}: {signal.category}"
    if abs(signal.score) < NAME_MIN_SCORE:
        return None
    word = humanize(signal.field)
    strong = abs(signal.score) >= NAME_STRONG_SCORE
    lexicon = _LEXICON.get(word)
    if lexicon is not None:
        very_low, low, high, very_high = lexicon
        if signal.score < 0:
            return very_low if strong else low
        return very_high if strong else high
    level = ("very " if strong else "") + ("low" if signal.score < 0 else "high")
    return f"{level} {word}"


def segment_name(signals: Sequence[FeatureSignal], max_parts: int = NAME_DEFAULT_PARTS) -> str:
    """A readable label from the strongest signals, e.g. "High income, young"."""
    ranked = sorted(signals, key=lambda s: (-abs(s.score), s.field, s.category or ""))
    parts: list[str] = []
    for signal in ranked:
        words = describe_signal(signal)
        if words is not None and words not in parts:
            parts.append(words)
        if len(parts) == max_parts:
            break
    if not parts:
        return AVERAGE_NAME
    name = ", ".join(parts)
    return name[0].upper() + name[1:]


def name_segments(
    profiles: Sequence[Sequence[FeatureSignal]], max_parts: int = NAME_DEFAULT_PARTS
) -> list[str]:
    """One distinct name per segment: segments sharing a name get more signals, then a number."""
    names = [segment_name(signals, max_parts) for signals in profiles]
    most_signals = max((len(signals) for signals in profiles), default=0)
    for parts in range(max_parts + 1, most_signals + 1):
        clashing = {name for name in names if names.count(name) > 1}
        if not clashing:
            break
        names = [
            segment_name(signals, parts) if name in clashing else name
            for name, signals in zip(names, profiles, strict=True)
        ]
    distinct: list[str] = []
    for name in names:
        candidate, number = name, 2
        while candidate in distinct:
            candidate, number = f"{name} ({number})", number + 1
        distinct.append(candidate)
    return distinct
