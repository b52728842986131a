"""Content analysis with scikit-learn: TF-IDF terms of each creative, a Random Forest predicting its
click-through (or conversion) rate, importances mapped back to terms with a direction.

Time is bounded by construction (see ForestSettings): every tree is grown on a capped weighted
sample of rows, over a capped vocabulary, with few candidate features per split, so the forest costs
about the same at 20,000 and at 1,000,000 creatives; only text preparation and prediction grow with
the row count.
"""

from __future__ import annotations

import html
import math
import os
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html.entities import html5
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.stats import binom
from sklearn.ensemble import RandomForestRegressor
from sklearn.feature_extraction.text import TfidfTransformer

from adapters.frames import FrameDataset
from application.ports import ContentAnalyzer
from domain.content import (
    COMBINING_MARK_PATTERN,
    CURLY_QUOTE_PATTERN,
    MARKUP_PATTERN,
    PLACEHOLDER_PATTERN,
    PLACEHOLDER_TOKEN,
    SPACED_PERCENT_PATTERN,
    TOKEN_PATTERN,
    URL_PATTERN,
    URL_TOKEN,
    ContentSpec,
    TermInsight,
    build_recommendations,
    ctr,
    cvr,
    present_text_fields,
    rpi,
    target_denominator_field,
    target_numerator_field,
    validate_content_spec,
)
from domain.errors import InsufficientData
from domain.progress import ProgressReporter, StageProgress, no_progress

# Below this many creatives a forest over words says nothing a reader should act on.
MIN_MODEL_CREATIVES = 20
# Benjamini-Hochberg false discovery rate for the under/top performer flags: thousands of creatives
# are tested at once, so a plain 5% level would flag 5% of perfectly ordinary ones.
FLAG_FDR = 0.05
NO_CHANNEL = "(none)"
# term code x rows + row must stay below this (int64, with room to spare).
MAX_CELL_KEY = 2**62

REASON_MISSING_ID = "missingId"
REASON_MISSING_COUNTS = "missingCounts"
REASON_NEGATIVE_COUNTS = "negativeCounts"
REASON_CLICKS_ABOVE_IMPRESSIONS = "clicksAboveImpressions"
REASON_BELOW_MIN_IMPRESSIONS = "belowMinImpressions"
REASON_NO_CLICKS = "noClicks"
REASON_NO_IMPRESSIONS = "noImpressions"
REASON_EMPTY_TEXT = "emptyText"

FLAG_LOW_VOLUME = "low_volume"
FLAG_UNDERPERFORMER = "underperformer"
FLAG_TOP_PERFORMER = "top_performer"


@dataclass(frozen=True)
class ForestSettings:
    """Estimator settings, chosen with bench/content.py (20,000 synthetic creatives, one thread).

    A default forest (every row per tree, unbounded depth, a large vocabulary) took 38 s on 50,000
    rows. Measured on 20,000 creatives: these settings fit in ~2.3 s of CPU and rank the four planted
    terms 1-4 with the right direction; 100 trees cost 2x for the same ranking, max_features=0.05 cost
    2.5x for a held-out R2 of 0.37 instead of 0.27, a depth of 16 cut R2 to 0.23.
    """

    n_estimators: int = 60
    # Trees are added this many at a time (warm start), with a progress report after each batch.
    chunk: int = 10
    # The most frequent terms (unigrams and bigrams in >= 2 creatives) kept as features.
    max_vocabulary: int = 2000
    max_features: float | str = "sqrt"
    max_depth: int | None = 24
    min_samples_leaf: int = 10
    # Rows drawn (weighted, with replacement) per tree: the cap that keeps the fit time flat in n.
    max_samples: int = 8000
    holdout_fraction: float = 0.2
    min_holdout: int = 5


def thread_budget() -> int:
    """Threads this task may use: the pool sets OMP_NUM_THREADS per worker; unset means one."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1


# Named entities ending in ";" (the only form replaced here), from the table html.unescape uses.
# "&amp;" is left to Python: its "&" could start a second entity, which html.unescape never decodes.
_NAMED_ENTITIES = {f"&{name}": char for name, char in html5.items() if name.endswith(";") and "&" not in char}


def clean_texts(texts: pl.Series) -> pl.Series:
    """domain.content.clean_text over a column, vectorized (polars runs the same patterns in Rust),
    minus the whitespace collapsing, which tokenizing makes moot."""
    texts = texts.cast(pl.Utf8).fill_null("")
    texts = texts.str.replace_all(PLACEHOLDER_PATTERN, f" {PLACEHOLDER_TOKEN} ")
    texts = texts.str.replace_all(MARKUP_PATTERN, " ")
    # Entities in two passes that together decode exactly what html.unescape does: the common named
    # ones in Rust, then Python's decoder on the rows that still hold an "&" (numeric references,
    # "&amp;", legacy names without ";", or a plain "Tom & Jerry").
    texts = texts.str.replace_many(list(_NAMED_ENTITIES), list(_NAMED_ENTITIES.values()))
    texts = _apply_where(texts, texts.str.contains("&", literal=True), html.unescape)
    texts = _apply_where(texts, texts.str.contains(COMBINING_MARK_PATTERN), _nfc)
    texts = texts.str.to_lowercase()
    texts = texts.str.replace_all(URL_PATTERN, f" {URL_TOKEN} ")
    texts = texts.str.replace_all(CURLY_QUOTE_PATTERN, "'")
    return texts.str.replace_all(SPACED_PERCENT_PATTERN, "${1}%")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _apply_where(texts: pl.Series, mask: pl.Series, function: Callable[[str], str]) -> pl.Series:
    """`function` on the rows where `mask` holds, in Python; the other rows untouched."""
    rows = mask.arg_true()
    if rows.len() == 0:
        return texts
    changed = pl.Series([function(text) for text in texts.gather(rows).to_list()], dtype=pl.Utf8)
    return texts.scatter(rows, changed)


def term_counts(
    texts: pl.DataFrame, min_df: int, max_terms: int, progress: ProgressReporter = no_progress
) -> tuple[sp.csr_matrix, list[str], np.ndarray]:
    """domain.content.creative_terms of every row (its text columns), counted: a rows x terms matrix
    over the terms found in at least `min_df` rows, the `max_terms` most frequent kept (as sklearn's
    CountVectorizer does, ties by term), the sorted vocabulary, and whether each row has any token.

    Strings are handled once, for the distinct tokens; bigrams and counting work on integer codes (a
    group-by over millions of (row, term string) pairs was the slowest step of the analysis)."""
    n = texts.height
    flats: list[pl.Series] = []
    field_rows: list[np.ndarray] = []
    for k, column_name in enumerate(texts.columns):
        tokens = clean_texts(texts[column_name]).str.extract_all(TOKEN_PATTERN)
        flats.append(tokens.explode().drop_nulls())
        field_rows.append(np.repeat(np.arange(n, dtype=np.int64), tokens.list.len().to_numpy()))
        progress(0.6 * (k + 1) / len(texts.columns), f"tokenized {column_name}")
    words = pl.concat(flats).unique().sort() if flats else pl.Series([], dtype=pl.Utf8)
    n_words = words.len()
    word_list: list[str] = words.to_list()

    # Codes: a word is its rank w in the sorted words; a bigram (a, b) is n_words + a * n_words + b.
    term_parts: list[np.ndarray] = []
    row_parts: list[np.ndarray] = []
    has_text = np.zeros(n, dtype=bool)
    for flat, row in zip(flats, field_rows, strict=True):
        word = flat.cast(pl.Enum(words)).to_physical().to_numpy().astype(np.int64)
        has_text[row] = True
        # Exploding keeps each field's tokens in order: a bigram is a token and the next one of the
        # same creative (fields are coded separately, so a bigram never spans two fields).
        follows = row[1:] == row[:-1]
        term_parts += [word, n_words + word[:-1][follows] * n_words + word[1:][follows]]
        row_parts += [row, row[:-1][follows]]
    del flats, field_rows
    term = np.concatenate(term_parts) if term_parts else np.zeros(0, dtype=np.int64)
    row = np.concatenate(row_parts) if row_parts else np.zeros(0, dtype=np.int64)
    del term_parts, row_parts

    progress(0.7, "counting terms")
    # Bigram codes reach n_words^2: with millions of distinct tokens (order numbers, coupon codes)
    # term * n + row could overflow int64, so the codes are first made dense (a sort more).
    decode: np.ndarray | None = None
    if (n_words + n_words * n_words) * max(n, 1) >= MAX_CELL_KEY:
        decode, dense = np.unique(term, return_inverse=True)
        term = dense.ravel().astype(np.int64)

    # One sort counts everything: cells (term, row) come out grouped by term, rows ascending. In
    # place, because at 100,000 creatives these arrays hold ~13 million entries each.
    key = term
    key *= max(n, 1)
    key += row
    del term, row
    key.sort()
    first_of_cell = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    tf = np.diff(np.r_[first_of_cell, len(key)])
    cell_term, cell_row = np.divmod(key[first_of_cell], max(n, 1))
    del key, first_of_cell
    starts = (
        np.flatnonzero(np.r_[True, cell_term[1:] != cell_term[:-1]]) if len(tf) else np.zeros(0, np.int64)
    )
    group_term = cell_term[starts]
    df = np.diff(np.r_[starts, len(tf)])
    total = np.add.reduceat(tf, starts) if len(tf) else np.zeros(0, dtype=np.int64)

    def term_name(code: int) -> str:
        if decode is not None:
            code = int(decode[code])
        if code < n_words:
            return word_list[code]
        first, second = divmod(code - n_words, n_words)
        return f"{word_list[first]} {word_list[second]}"

    candidates = np.flatnonzero(df >= min_df)
    # The most frequent first; the cut at max_terms must not depend on sort order, so ties go by name.
    by_total = candidates[np.argsort(-total[candidates], kind="stable")]
    if len(by_total) > max_terms:
        cutoff = total[by_total[max_terms - 1]]
        sure = by_total[total[by_total] > cutoff]
        tied = sorted(
            (term_name(int(group_term[g])), g) for g in by_total[total[by_total] == cutoff].tolist()
        )
        chosen = [*sure.tolist(), *(g for _, g in tied[: max_terms - len(sure)])]
    else:
        chosen = by_total.tolist()
    named = sorted((term_name(int(group_term[g])), g) for g in chosen)
    group_column = np.full(len(starts), -1, dtype=np.int64)
    group_column[[g for _, g in named]] = np.arange(len(named))
    column = np.repeat(group_column, df)
    kept = column >= 0
    counts = sp.csr_matrix(
        (tf[kept].astype(np.float64), (cell_row[kept], column[kept])), shape=(n, len(named))
    )
    return counts, [term for term, _ in named], has_text


class SklearnContentAnalyzer(ContentAnalyzer[pl.DataFrame]):
    def __init__(self, settings: ForestSettings | None = None, n_jobs: int | None = None) -> None:
        self._settings = settings or ForestSettings()
        self._n_jobs = n_jobs

    def analyze(self, dataset: FrameDataset, spec: ContentSpec, progress: ProgressReporter) -> dict[str, Any]:
        schema = dataset.schema
        validate_content_spec(spec, schema)
        progress(0.0, "checking creatives")
        text_fields = present_text_fields(spec, schema)
        run = _Run(
            dataset.frame, spec, text_fields, self._settings, self._n_jobs or thread_budget(), progress
        )
        return run.result()


class _Run:
    """One analysis; attributes hold the per-row arrays shared by the steps."""

    def __init__(
        self,
        frame: pl.DataFrame,
        spec: ContentSpec,
        text_fields: tuple[str, ...],
        settings: ForestSettings,
        n_jobs: int,
        progress: ProgressReporter,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.n_jobs = n_jobs
        self.progress = progress
        self.warnings: list[str] = []
        self.frame = frame
        self.text_fields = text_fields
        self.vocabulary: list[str] = []
        missing_text = [name for name in spec.text_fields if name not in self.text_fields]
        if missing_text:
            self.warnings.append(f"text fields not in the data, ignored: {', '.join(missing_text)}")

        ids = frame[spec.id_field]
        # Ids are echoed back as sent when they are text or integers; anything else (floats, dates)
        # as text, so they stay hashable and JSON-able.
        if not (ids.dtype == pl.Utf8 or ids.dtype.is_integer()):
            ids = ids.cast(pl.Utf8)
        self.ids: list[Any] = ids.to_list()
        self.channels = np.array(
            frame[spec.channel_field].cast(pl.Utf8).fill_null(NO_CHANNEL).to_list(), dtype=object
        )
        self.impressions = _floats(frame, spec.impressions_field)
        self.clicks = _floats(frame, spec.clicks_field)
        self.conversions = _floats(frame, spec.conversions_field)
        self.has_revenue = spec.revenue_field in frame.columns
        if self.has_revenue:
            revenue = _floats(frame, spec.revenue_field)
            missing_revenue = int(np.isnan(revenue).sum())
            if missing_revenue:
                self.warnings.append(f"{missing_revenue} creatives have no revenue value; counted as 0")
            self.revenue = np.nan_to_num(revenue, nan=0.0)
        else:
            self.revenue = np.zeros(frame.height)
        counts = {
            spec.impressions_field: self.impressions,
            spec.clicks_field: self.clicks,
            spec.conversions_field: self.conversions,
        }
        self.numerator = counts[target_numerator_field(spec)]
        self.denominator = counts[target_denominator_field(spec)]

    # --- steps -----------------------------------------------------------------------------

    def result(self) -> dict[str, Any]:
        n = self.frame.height
        reason = self._row_reasons(n)
        candidates = np.flatnonzero(np.array([r is None for r in reason]))
        counts = self._terms(candidates, reason)
        # Valid creatives appear in every summary; eligible ones also have a defined, well-measured
        # target (percentile, flags); modelled ones also have text.
        valid = np.array([r is None or r in _MODEL_ONLY_REASONS for r in reason])
        eligible = np.array([r is None or r == REASON_EMPTY_TEXT for r in reason])
        model_rows = np.flatnonzero(np.array([r is None for r in reason]))
        excluded = dict(sorted(Counter(r for r in reason if r is not None).items()))
        if len(model_rows) < MIN_MODEL_CREATIVES:
            raise InsufficientData(
                f"{len(model_rows)} creatives have at least {self.spec.min_impressions} impressions, a "
                f"defined {self.spec.target} and some text; the model needs {MIN_MODEL_CREATIVES}",
                [{"field": "minImpressions", "message": f"excluded rows by reason: {excluded}"}],
            )

        channel_summary = self._channel_summary(valid)
        percentile, flags, underperformers = self._creative_standing(valid, eligible)
        model, insights = self._model(model_rows, counts)

        creatives_by_channel = Counter(self.channels[valid].tolist())
        recommendations = build_recommendations(
            insights, self.spec.target, underperformers, creatives_by_channel
        )
        creatives = self._creatives(valid, percentile, flags)
        self.progress(1.0, "done")
        return {
            "topTerms": [insight.to_json() for insight in insights],
            "channelSummary": channel_summary,
            "creatives": creatives,
            "model": model,
            "excluded": excluded,
            "recommendations": [r.to_json() for r in recommendations],
            "warnings": self.warnings,
        }

    def _row_reasons(self, n: int) -> list[str | None]:
        """Why each row is left out of the model, first reason wins; None = modelled. Rows with a
        reason in _MODEL_ONLY_REASONS are still valid creatives and appear in the summaries."""
        counts = np.column_stack([self.impressions, self.clicks, self.conversions])
        missing_id = np.array([value is None for value in self.ids])
        missing = np.isnan(counts).any(axis=1)
        with np.errstate(invalid="ignore"):
            negative = (counts < 0).any(axis=1)
            clicks_above = self.clicks > self.impressions
            below_min = self.impressions < self.spec.min_impressions
            # The target rate is undefined without its denominator (minImpressions may be 0).
            undefined = self.denominator <= 0
        conversions_above = int(np.sum(~missing & ~negative & (self.conversions > self.clicks)))
        if conversions_above:
            # Kept: view-through attribution and repeat purchases make more conversions than clicks
            # legitimate; a CVR above 1 is then reported as measured.
            self.warnings.append(f"{conversions_above} creatives have more conversions than clicks")
        reason: list[str | None] = [None] * n
        # Later rules overwrite earlier ones, so the list runs from the least to the most basic reason.
        for mask, name in (
            (undefined, REASON_NO_CLICKS if self.spec.target == "cvr" else REASON_NO_IMPRESSIONS),
            (below_min, REASON_BELOW_MIN_IMPRESSIONS),
            (clicks_above, REASON_CLICKS_ABOVE_IMPRESSIONS),
            (negative, REASON_NEGATIVE_COUNTS),
            (missing, REASON_MISSING_COUNTS),
            (missing_id, REASON_MISSING_ID),
        ):
            for i in np.flatnonzero(mask):
                reason[i] = name
        valid_ids = [self.ids[i] for i in range(n) if reason[i] not in _INVALID_REASONS]
        duplicates = len(valid_ids) - len(set(valid_ids))
        if duplicates:
            self.warnings.append(f"{duplicates} creatives repeat an id already seen")
        return reason

    def _terms(self, rows: np.ndarray, reason: list[str | None]) -> sp.csr_matrix:
        """Term counts of the given rows; rows whose text yields no token are marked emptyText."""
        texts = self.frame.select(self.text_fields)
        # Selecting columns shares their buffers; gathering rows copies every text, so only when needed.
        if len(rows) < texts.height:
            texts = texts[rows]
        counts, self.vocabulary, has_text = term_counts(
            texts,
            min_df=2,
            max_terms=self.settings.max_vocabulary,
            progress=StageProgress(self.progress, 0.02, 0.15),
        )
        for i in rows[~has_text].tolist():
            reason[i] = REASON_EMPTY_TEXT
        return counts[has_text]

    def _channel_summary(self, valid: np.ndarray) -> list[dict[str, Any]]:
        table = pl.DataFrame(
            {
                "channel": self.channels[valid].tolist(),
                "impressions": self.impressions[valid],
                "clicks": self.clicks[valid],
                "conversions": self.conversions[valid],
                "revenue": self.revenue[valid],
            }
        )
        grouped = (
            table.group_by("channel")
            .agg(pl.len().alias("creatives"), pl.col("impressions", "clicks", "conversions", "revenue").sum())
            .sort("channel")
        )
        summary = []
        for row in grouped.iter_rows(named=True):
            revenue = float(row["revenue"]) if self.has_revenue else None
            summary.append(
                {
                    "channel": row["channel"],
                    "creatives": int(row["creatives"]),
                    "impressions": _number(row["impressions"]),
                    "clicks": _number(row["clicks"]),
                    "conversions": _number(row["conversions"]),
                    "revenue": revenue,
                    "ctr": ctr(float(row["clicks"]), float(row["impressions"])),
                    "cvr": cvr(float(row["conversions"]), float(row["clicks"])),
                    "rpi": rpi(revenue, float(row["impressions"])) if revenue is not None else None,
                }
            )
        return summary

    def _creative_standing(
        self, valid: np.ndarray, eligible: np.ndarray
    ) -> tuple[np.ndarray, list[list[str]], dict[str, list[Any]]]:
        """Percentile of the target within the channel, and flags from a one-sided binomial test of
        each creative against the rest of its channel (leave-one-out rate), BH-corrected."""
        n = len(valid)
        flags: list[list[str]] = [[] for _ in range(n)]
        for i in np.flatnonzero(valid & (self.impressions < self.spec.min_impressions)):
            flags[i].append(FLAG_LOW_VOLUME)
        percentile = np.full(n, np.nan)
        rows = np.flatnonzero(eligible)
        underperformers: dict[str, list[Any]] = {}
        if len(rows) == 0:
            return percentile, flags, underperformers

        num = self.numerator[rows]
        den = self.denominator[rows]
        rate = num / den
        frame = pl.DataFrame({"channel": self.channels[rows].tolist(), "rate": rate, "num": num, "den": den})
        # Midpoint percentile rank: the share of the channel below, plus half the ties, in percent.
        below_and_half_ties = pl.col("rate").rank("average").over("channel") - 0.5
        standing = frame.select(
            (below_and_half_ties / pl.len().over("channel") * 100).alias("pct"),
            pl.col("num").sum().over("channel").alias("channel_num"),
            pl.col("den").sum().over("channel").alias("channel_den"),
        )
        percentile[rows] = standing["pct"].to_numpy()

        rest_num = standing["channel_num"].to_numpy() - num
        rest_den = standing["channel_den"].to_numpy() - den
        testable = rest_den > 0
        trials = np.rint(den[testable])
        # A binomial count cannot exceed its trials; CVR above 1 (more conversions than clicks) is
        # tested as a full conversion.
        successes = np.minimum(np.rint(num[testable]), trials)
        p_rest = np.clip(rest_num[testable] / rest_den[testable], 0.0, 1.0)
        p_low = binom.cdf(successes, trials, p_rest)
        p_high = binom.sf(successes - 1, trials, p_rest)
        significant = _benjamini_hochberg(np.concatenate([p_low, p_high]), FLAG_FDR)
        low, high = significant[: len(p_low)], significant[len(p_low) :]
        tested = rows[testable]
        for i in tested[low]:
            flags[i].append(FLAG_UNDERPERFORMER)
            underperformers.setdefault(str(self.channels[i]), []).append(self.ids[i])
        for i in tested[high]:
            flags[i].append(FLAG_TOP_PERFORMER)
        return percentile, flags, underperformers

    def _model(self, rows: np.ndarray, counts: sp.csr_matrix) -> tuple[dict[str, Any], list[TermInsight]]:
        if counts.shape[1] == 0:
            raise InsufficientData("no term appears in two or more creatives: nothing to learn from the text")
        # A term in every creative ("hi __placeholder__" in a template) says nothing by its presence;
        # its TF-IDF value would only encode the length of the text, which the forest would pick up.
        everywhere = np.bincount(counts.indices, minlength=counts.shape[1]) >= len(rows)
        if everywhere.all():
            raise InsufficientData("every shared term appears in every creative: nothing to compare")
        counts = counts[:, np.flatnonzero(~everywhere)]
        vocabulary = [term for term, drop in zip(self.vocabulary, everywhere, strict=True) if not drop]
        self.progress(0.15, "weighting terms")
        tfidf = TfidfTransformer(sublinear_tf=True).fit_transform(counts).astype(np.float32)
        tfidf, vocabulary = _merge_identical_terms(sp.csc_matrix(tfidf), vocabulary)
        presence = tfidf.copy()
        presence.data[:] = 1.0

        channels = self.channels[rows]
        num = self.numerator[rows]
        den = self.denominator[rows]
        channel_rate = _channel_rate(channels, num, den)
        # The forest predicts each creative's rate relative to its channel's (1.2 = 20% above): a
        # push CTR is not comparable to a banner CTR, and the model should explain the copy, not the
        # channel mix. The held-out R2 then says how much of the within-channel spread the text explains.
        y = np.divide(num / den, channel_rate, out=np.ones(len(rows)), where=channel_rate > 0)
        weight = _precision_weights(y, den, channel_rate)
        if np.average((y - np.average(y, weights=weight)) ** 2, weights=weight) <= 0:
            raise InsufficientData(
                f"every modelled creative has its channel's {self.spec.target}: nothing to explain"
            )

        names = sorted(set(channels.tolist()))
        # Channel indicators stay as features so that a term can matter in one channel only.
        if len(names) > 1:
            index = {name: k for k, name in enumerate(names)}
            onehot = sp.csc_matrix(
                (np.ones(len(rows), dtype=np.float32), ([index[c] for c in channels], np.arange(len(rows)))),
                shape=(len(names), len(rows)),
            ).T
            features = sp.hstack([tfidf, onehot], format="csc", dtype=np.float32)
        else:
            features = tfidf
        n_terms = len(vocabulary)

        train, holdout = self._split(len(rows))
        forest = self._fit(features[train], y[train], weight[train])
        self.progress(0.9, "scoring the model")
        # Threads sum the trees' predictions in whatever order they finish; one thread keeps the R2
        # identical to the last bit whatever the budget (predicting the holdout is cheap).
        forest.set_params(n_jobs=1)
        r2 = _weighted_r2(y[holdout], forest.predict(features[holdout]), weight[holdout])
        if len(holdout) < 100:
            self.warnings.append(f"model quality rests on {len(holdout)} held-out creatives only")
        if r2 is not None and r2 < 0.05:
            self.warnings.append(
                f"the text explains little of the {self.spec.target} (held-out R2 {r2:.3f}): "
                "treat the terms as hints"
            )

        importances = forest.feature_importances_
        order = [j for j in np.argsort(-importances[:n_terms], kind="stable") if importances[j] > 0]
        insights = []
        expected = den * channel_rate
        for j in order[: self.spec.top_terms]:
            with_term = presence.indices[presence.indptr[j] : presence.indptr[j + 1]]
            mask = np.zeros(len(rows), dtype=bool)
            mask[with_term] = True
            insights.append(
                TermInsight(
                    term=vocabulary[j],
                    importance=float(importances[j]),
                    support=int(mask.sum()),
                    lift=_lift(num, expected, mask),
                )
            )
        if not insights:
            self.warnings.append("no term improved the model")
        model = {
            "target": self.spec.target,
            "r2": r2,
            "r2Kind": "holdout",
            "creatives": len(rows),
            "trainCreatives": len(train),
            "holdoutCreatives": len(holdout),
            "terms": n_terms,
            "trees": len(forest.estimators_),
            "channelImportance": float(importances[n_terms:].sum()),
        }
        return model, insights

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.spec.random_state)
        order = rng.permutation(n)
        size = max(self.settings.min_holdout, round(n * self.settings.holdout_fraction))
        return np.sort(order[size:]), np.sort(order[:size])

    def _fit(self, x: sp.csc_matrix, y: np.ndarray, weight: np.ndarray) -> RandomForestRegressor:
        settings = self.settings
        forest = RandomForestRegressor(
            n_estimators=0,
            max_features=settings.max_features,
            max_depth=settings.max_depth,
            min_samples_leaf=settings.min_samples_leaf,
            # sklearn draws each tree's rows with probability proportional to the weight, so the
            # weights act through the sample and the cap bounds every tree's size.
            max_samples=min(settings.max_samples, x.shape[0]),
            warm_start=True,
            n_jobs=self.n_jobs,
            random_state=self.spec.random_state,
        )
        progress = StageProgress(self.progress, 0.2, 0.9)
        grown = 0
        while grown < settings.n_estimators:
            grown = min(settings.n_estimators, grown + settings.chunk)
            forest.set_params(n_estimators=grown)
            forest.fit(x, y, sample_weight=weight)
            progress(grown / settings.n_estimators, f"grown {grown} of {settings.n_estimators} trees")
        return forest

    def _creatives(
        self, valid: np.ndarray, percentile: np.ndarray, flags: list[list[str]]
    ) -> list[dict[str, Any]]:
        out = []
        for i in np.flatnonzero(valid).tolist():
            out.append(
                {
                    "id": self.ids[i],
                    "channel": str(self.channels[i]),
                    "ctr": ctr(float(self.clicks[i]), float(self.impressions[i])),
                    "cvr": cvr(float(self.conversions[i]), float(self.clicks[i])),
                    "rpi": rpi(float(self.revenue[i]), float(self.impressions[i]))
                    if self.has_revenue
                    else None,
                    "percentileInChannel": None if math.isnan(percentile[i]) else float(percentile[i]),
                    "flags": flags[i],
                }
            )
        return out


_INVALID_REASONS = frozenset(
    {REASON_MISSING_ID, REASON_MISSING_COUNTS, REASON_NEGATIVE_COUNTS, REASON_CLICKS_ABOVE_IMPRESSIONS}
)
_MODEL_ONLY_REASONS = frozenset(
    {REASON_BELOW_MIN_IMPRESSIONS, REASON_NO_CLICKS, REASON_NO_IMPRESSIONS, REASON_EMPTY_TEXT}
)


def _floats(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(np.float64, copy=True)


def _number(value: float) -> int | float:
    """Counts print as integers when they are whole, as the caller sent them."""
    value = float(value)
    return int(value) if value.is_integer() else value


def _channel_rate(channels: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Each row's channel-pooled rate (over the rows given)."""
    names, inverse = np.unique(channels.astype(str), return_inverse=True)
    sums_num = np.bincount(inverse, weights=num, minlength=len(names))
    sums_den = np.bincount(inverse, weights=den, minlength=len(names))
    rate: np.ndarray = (sums_num / np.maximum(sums_den, 1e-12))[inverse]
    return rate


def _precision_weights(relative: np.ndarray, trials: np.ndarray, channel_rate: np.ndarray) -> np.ndarray:
    """Inverse-variance weights of the relative rate: binomial noise (1-p)/(n p) plus the spread
    between creatives that no amount of traffic removes (method of moments). A creative seen 100 times
    weighs far less than one seen 100,000 times, but one seen 10 million times does not drown the rest."""
    p = np.clip(channel_rate, 1e-6, 1 - 1e-6)
    sampling = (1 - p) / (trials * p)
    between = max(0.0, float(np.mean((relative - 1.0) ** 2) - np.mean(sampling)))
    weight: np.ndarray = 1.0 / (between + sampling)
    return weight / float(weight.mean())


def _weighted_r2(y: np.ndarray, predicted: np.ndarray, weight: np.ndarray) -> float | None:
    mean = np.average(y, weights=weight)
    total = float(np.sum(weight * (y - mean) ** 2))
    if total <= 0:
        return None
    return 1.0 - float(np.sum(weight * (y - predicted) ** 2)) / total


def _lift(observed: np.ndarray, expected: np.ndarray, mask: np.ndarray) -> float | None:
    """Observed over expected (from the channel's rate) with the term, relative to without it."""
    exp_with, exp_without = expected[mask].sum(), expected[~mask].sum()
    if exp_with <= 0 or exp_without <= 0:
        return None
    ratio_without = observed[~mask].sum() / exp_without
    if ratio_without <= 0:
        return None
    return float((observed[mask].sum() / exp_with) / ratio_without - 1.0)


def _merge_identical_terms(
    matrix: sp.csc_matrix, vocabulary: Sequence[str]
) -> tuple[sp.csc_matrix, list[str]]:
    """Keep one column per set of creatives: when "20%" only ever appears in "20% off", the two are the
    same feature and would split its importance. The longest phrase stands for the group."""
    matrix.sort_indices()
    groups: dict[bytes, int] = {}
    for j in range(matrix.shape[1]):
        key = matrix.indices[matrix.indptr[j] : matrix.indptr[j + 1]].tobytes()
        best = groups.get(key)
        if best is None or _phrase_rank(vocabulary[j]) > _phrase_rank(vocabulary[best]):
            groups[key] = j
    keep = sorted(groups.values())
    if len(keep) == matrix.shape[1]:
        return matrix, list(vocabulary)
    return matrix[:, keep], [vocabulary[j] for j in keep]


def _phrase_rank(term: str) -> tuple[int, int]:
    return term.count(" "), len(term)


def _benjamini_hochberg(p_values: np.ndarray, q: float) -> np.ndarray:
    m = len(p_values)
    if m == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p_values, kind="stable")
    thresholds = q * np.arange(1, m + 1) / m
    passed = p_values[order] <= thresholds
    significant = np.zeros(m, dtype=bool)
    if passed.any():
        cutoff = np.max(np.flatnonzero(passed))
        significant[order[: cutoff + 1]] = True
    return significant
