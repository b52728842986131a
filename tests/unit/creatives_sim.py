"""Synthetic creatives for the content analysis tests: planted terms with known effects, and a small
table with round numbers whose rates and flags can be worked out by hand."""

from __future__ import annotations

import numpy as np
import polars as pl

PLANTED = {"free": 1.5, "20% off": 1.4, "urgent": 0.7, "final notice": 0.65}
# As frequent as the planted terms, with no effect: a ranking that favours frequency would pick them.
DECOYS = ("weekly", "members")
CHANNEL_CTR = {"email": 0.03, "push": 0.06, "banner": 0.01}


def synthetic_creatives(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    letters = list("abcdeghiklmnoprstuwy")
    background = sorted({"".join(rng.choice(letters, size=5)) for _ in range(400)})
    channels = rng.choice(list(CHANNEL_CTR), size=n)
    marks = {term: rng.random(n) < 0.15 for term in (*PLANTED, *DECOYS)}
    subjects, bodies = [], []
    for i in range(n):
        subject = list(rng.choice(background, size=5))
        body = list(rng.choice(background, size=25))
        for term, has in marks.items():
            if has[i]:
                target = subject if rng.random() < 0.7 else body
                target.insert(
                    int(rng.integers(len(target) + 1)), term.upper() if rng.random() < 0.3 else term
                )
        subjects.append(" ".join(subject))
        bodies.append(f"<p>Hi {{{{first_name}}}},</p><p>{' '.join(body)}</p>&nbsp;")
    effect = np.ones(n)
    for term, multiplier in PLANTED.items():
        effect *= np.where(marks[term], multiplier, 1.0)
    rate = np.array([CHANNEL_CTR[c] for c in channels]) * effect * rng.lognormal(0.0, 0.15, n)
    impressions = rng.integers(2_000, 20_000, n)
    clicks = rng.binomial(impressions, np.clip(rate, 0, 1))
    conversions = rng.binomial(clicks, 0.1)
    return pl.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "channel": channels,
            "subject": subjects,
            "body": bodies,
            "impressions": impressions,
            "clicks": clicks,
            "conversions": conversions,
            "revenue": conversions * 25.0,
        }
    )


def hand_table() -> pl.DataFrame:
    """24 creatives in two channels with round numbers; texts share words so there is a vocabulary."""
    rows = []
    for i in range(12):
        rows.append(("a", 1000, 50, 5, 100.0, f"Shop sale item{i % 3} now"))
    rows[0] = ("a", 1000, 10, 1, 10.0, "Shop sale item0 now")  # far below the channel: 1% vs 5.4%
    rows[1] = ("a", 1000, 100, 10, 300.0, "Shop sale item1 now")  # far above
    rows[2] = ("a", 1000, 45, 3, 50.0, "Shop sale item2 now")  # a little below: not significant
    for i in range(12):
        rows.append(("b", 2000, 20 + i, 2, 0.0, f"Sale today item{i % 3}"))
    return pl.DataFrame(
        {
            "id": [f"x{i}" for i in range(len(rows))],
            "channel": [r[0] for r in rows],
            "impressions": [r[1] for r in rows],
            "clicks": [r[2] for r in rows],
            "conversions": [r[3] for r in rows],
            "revenue": [r[4] for r in rows],
            "subject": [r[5] for r in rows],
        }
    )
