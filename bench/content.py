"""Content analysis benchmark: wall time and peak RSS of SklearnContentAnalyzer.analyze.

Each run is a fresh subprocess (so peak RSS is that run's own), the figure is the median of 3; the
time is SklearnContentAnalyzer.analyze on a loaded dataset, generating the data is not counted. The
synthetic creatives look like real ones: HTML bodies of 20-80 words with placeholders and links, a
Zipf-distributed vocabulary of 5,000 words, four channels, and four planted terms that move CTR
("free" x1.5, "20% off" x1.4, "urgent" x0.7, "final notice" x0.65); the run also reports whether those
four are in the top 10 terms with the right direction, so a faster setting that loses the signal shows.

    .venv/bin/python bench/content.py                            # 20,000 and 100,000 creatives
    .venv/bin/python bench/content.py --sizes 5000 --untuned     # also sklearn's default forest

Wall time on a shared machine moves with the load of other processes: the table also gives CPU
seconds and the 1-minute load average at the start of each run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from baseline import plain_env

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PLANTED = {"free": 1.5, "20% off": 1.4, "urgent": 0.7, "final notice": 0.65}
PLANTED_SHARE = {"free": 0.15, "20% off": 0.12, "urgent": 0.12, "final notice": 0.10}
CHANNELS = {"email": 0.03, "push": 0.05, "sms": 0.02, "banner": 0.008}
CTAS = ["shop now", "learn more", "see more", "get started", "open app", "read more", "book now", "join us"]


def _vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdeghiklmnoprstuwy"))
    words: set[str] = set()
    while len(words) < size:
        word = "".join(rng.choice(letters, size=int(rng.integers(3, 9))))
        words.add(word)
    # Keep the planted words out of the background so only the planted copy carries them.
    banned = {"free", "off", "urgent", "final", "notice"}
    return sorted(words - banned)


def make_creatives(n: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    vocabulary = np.array(_vocabulary(5000, rng))
    zipf = 1.0 / np.arange(1, len(vocabulary) + 1) ** 1.05
    zipf /= zipf.sum()
    # Words are drawn 200,000 at a time: one draw per text is slow, one draw for the whole run would
    # hold millions of Python strings and inflate the peak RSS being measured.
    pool: list[str] = []
    cursor = 0

    def words(count: int) -> str:
        nonlocal pool, cursor
        if cursor + count > len(pool):
            pool = vocabulary[rng.choice(len(vocabulary), size=200_000, p=zipf)].tolist()
            cursor = 0
        cursor += count
        return " ".join(pool[cursor - count : cursor])

    channels = rng.choice(list(CHANNELS), size=n, p=[0.4, 0.3, 0.15, 0.15])
    has = {term: rng.random(n) < share for term, share in PLANTED_SHARE.items()}
    lengths = rng.integers([3, 20, 3], [8, 80, 7], size=(n, 3))
    where = rng.random((n, len(PLANTED), 3))
    subjects, headlines, bodies, ctas = [], [], [], []
    for i in range(n):
        subject = words(int(lengths[i, 0]))
        body = words(int(lengths[i, 1]))
        for k, term in enumerate(PLANTED):
            if has[term][i]:
                # Mostly in the subject, sometimes only in the body: both must count.
                if where[i, k, 0] < 0.7:
                    subject = f"{subject} {term}" if where[i, k, 1] < 0.5 else f"{term} {subject}"
                else:
                    body = f"{body} {term.upper() if where[i, k, 2] < 0.3 else term}"
        subjects.append(subject.capitalize())
        headlines.append(words(int(lengths[i, 2])).title() if channels[i] != "email" else None)
        bodies.append(
            f"<html><body><p>Hi {{{{first_name}}}},</p><p>{body}</p>"
            f'<a href="https://example.com/c/{i}?utm_source=x">{words(2)}</a>&nbsp;&copy; 2024</body></html>'
        )
        ctas.append(CTAS[i % len(CTAS)])

    effect = np.ones(n)
    for term, multiplier in PLANTED.items():
        effect *= np.where(has[term], multiplier, 1.0)
    base = np.array([CHANNELS[c] for c in channels])
    rate = np.clip(base * effect * rng.lognormal(0.0, 0.25, n), 0, 1)
    impressions = np.maximum(1, rng.lognormal(np.log(3000), 1.0, n)).astype(np.int64)
    clicks = rng.binomial(impressions, rate)
    conversions = rng.binomial(clicks, 0.08)
    revenue = np.round(conversions * rng.gamma(4.0, 12.0, n), 2)
    return pl.DataFrame(
        {
            "id": [f"c{i}" for i in range(n)],
            "channel": channels,
            "subject": subjects,
            "headline": headlines,
            "body": bodies,
            "ctaText": ctas,
            "impressions": impressions,
            "clicks": clicks,
            "conversions": conversions,
            "revenue": revenue,
        }
    )


def _one_run(n: int, untuned: bool) -> dict[str, object]:
    from adapters.content.analyzer import SklearnContentAnalyzer
    from adapters.content.forest import ForestSettings, thread_budget
    from adapters.frames import PolarsDataset
    from domain.content import ContentSpec
    from entrypoints.presenters.content import present_content_analysis

    dataset = PolarsDataset(make_creatives(n))
    settings = ForestSettings()
    if untuned:
        # scikit-learn's RandomForestRegressor defaults: 100 trees on every row, every feature
        # considered at every split, unbounded depth, leaves of one.
        settings = ForestSettings(
            n_estimators=100, max_features=1.0, max_depth=None, min_samples_leaf=1, max_samples=10**9
        )
    reports: list[float] = []
    load = os.getloadavg()[0]
    cpu = time.process_time()
    start = time.perf_counter()
    analysis = SklearnContentAnalyzer(settings).analyze(
        dataset, ContentSpec(), lambda fraction, message="": reports.append(fraction)
    )
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu
    result = present_content_analysis(analysis)
    top = {t["term"]: t["direction"] for t in result["topTerms"][:10]}
    expected = {term: "helps" if m > 1 else "hurts" for term, m in PLANTED.items()}
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "load": load,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "r2": result["model"]["r2"],
        "terms": result["model"]["terms"],
        "planted": sum(top.get(term) == d for term, d in expected.items()),
        "result_json_mb": len(json.dumps(result)) / 1e6,
        "threads": thread_budget(),
        "progress_reports": len(reports),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--untuned", action="store_true", help="also time sklearn's default forest (once)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one_run(args.one, args.untuned)))
        return

    # The worker gives each task its thread budget through OMP_NUM_THREADS; one unless told.
    env = plain_env(OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env.setdefault("POLARS_MAX_THREADS", env["OMP_NUM_THREADS"])
    plans = [(n, False, args.repeats) for n in args.sizes]
    if args.untuned:
        plans += [(n, True, 1) for n in args.sizes]
    table = []
    for n, untuned, repeats in plans:
        runs = []
        for _ in range(repeats):
            command = [sys.executable, __file__, "--one", str(n), *(["--untuned"] if untuned else [])]
            out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
            runs.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps({"creatives": n, "untuned": untuned, **runs[-1]}), flush=True)
        table.append((n, untuned, runs))

    print()
    print(
        "| creatives | forest | threads | wall s, median (runs) | CPU s | peak RSS MB | load | R2 | planted |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    medians: dict[tuple[int, bool], float] = {}
    for n, untuned, runs in table:
        wall = statistics.median(float(r["seconds"]) for r in runs)
        each = ", ".join(f"{float(r['seconds']):.2f}" for r in runs)
        medians[(n, untuned)] = wall
        print(
            f"| {n:,} | {'sklearn defaults' if untuned else 'tuned'} | {runs[0]['threads']} "
            f"| {wall:.2f} ({each}) "
            f"| {statistics.median(float(r['cpu_seconds']) for r in runs):.2f} "
            f"| {statistics.median(float(r['peak_rss_mb']) for r in runs):.0f} "
            f"| {statistics.median(float(r['load']) for r in runs):.1f} "
            f"| {float(runs[0]['r2']):.3f} | {runs[0]['planted']}/4 in top 10 |"
        )
    for (n, untuned), wall in medians.items():
        if untuned and (n, False) in medians:
            print(f"sklearn defaults / tuned at {n:,} creatives: {wall / medians[(n, False)]:.1f}x wall time")


if __name__ == "__main__":
    main()
