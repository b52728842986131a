"""The Random Forest: each creative's target rate relative to its channel's, predicted from its terms
(and channel indicators), weighted by how well the rate is measured, scored on held-out creatives.

Time is bounded by construction (see ForestSettings): every tree is grown on a capped weighted
sample of rows, over a capped vocabulary, with few candidate features per split, so the forest costs
about the same at 20,000 and at 1,000,000 creatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import RandomForestRegressor

from domain.errors import InsufficientData
from domain.progress import ProgressReporter, StageProgress


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


@dataclass(frozen=True)
class ForestFit:
    # Per feature: the terms' first (in vocabulary order), then the channel indicators'.
    importances: np.ndarray
    # Each modelled creative's channel-pooled target rate.
    channel_rate: np.ndarray
    r2: float | None  # weighted, on the held-out creatives
    train_creatives: int
    holdout_creatives: int
    trees: int


def fit_relative_rates(
    tfidf: sp.csc_matrix,
    channels: np.ndarray,
    numerator: np.ndarray,
    denominator: np.ndarray,
    *,
    target: str,
    random_state: int,
    settings: ForestSettings,
    n_jobs: int,
    progress: ProgressReporter,
) -> ForestFit:
    n = len(channels)
    channel_rate = _channel_rate(channels, numerator, denominator)
    # The forest predicts each creative's rate relative to its channel's (1.2 = 20% above): a
    # push CTR is not comparable to a banner CTR, and the model should explain the copy, not the
    # channel mix. The held-out R2 then says how much of the within-channel spread the text explains.
    y = np.divide(numerator / denominator, channel_rate, out=np.ones(n), where=channel_rate > 0)
    weight = precision_weights(y, denominator, channel_rate)
    if np.average((y - np.average(y, weights=weight)) ** 2, weights=weight) <= 0:
        raise InsufficientData(f"every modelled creative has its channel's {target}: nothing to explain")

    features = _with_channel_indicators(tfidf, channels)
    train, holdout = _split(n, random_state, settings)
    forest = _fit(features[train], y[train], weight[train], random_state, settings, n_jobs, progress)
    progress(0.9, "scoring the model")
    # Threads sum the trees' predictions in whatever order they finish; one thread keeps the R2
    # identical to the last bit whatever the budget (predicting the holdout is cheap).
    forest.set_params(n_jobs=1)
    r2 = weighted_r2(y[holdout], forest.predict(features[holdout]), weight[holdout])
    return ForestFit(
        importances=forest.feature_importances_,
        channel_rate=channel_rate,
        r2=r2,
        train_creatives=len(train),
        holdout_creatives=len(holdout),
        trees=len(forest.estimators_),
    )


def _with_channel_indicators(tfidf: sp.csc_matrix, channels: np.ndarray) -> sp.csc_matrix:
    """Channel indicators stay as features so that a term can matter in one channel only."""
    names = sorted(set(channels.tolist()))
    if len(names) <= 1:
        return tfidf
    n = len(channels)
    index = {name: k for k, name in enumerate(names)}
    onehot = sp.csc_matrix(
        (np.ones(n, dtype=np.float32), ([index[c] for c in channels], np.arange(n))),
        shape=(len(names), n),
    ).T
    return sp.hstack([tfidf, onehot], format="csc", dtype=np.float32)


def _split(n: int, random_state: int, settings: ForestSettings) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(random_state)
    order = rng.permutation(n)
    size = max(settings.min_holdout, round(n * settings.holdout_fraction))
    return np.sort(order[size:]), np.sort(order[:size])


def _fit(
    x: sp.csc_matrix,
    y: np.ndarray,
    weight: np.ndarray,
    random_state: int,
    settings: ForestSettings,
    n_jobs: int,
    progress: ProgressReporter,
) -> RandomForestRegressor:
    forest = RandomForestRegressor(
        n_estimators=0,
        max_features=settings.max_features,
        max_depth=settings.max_depth,
        min_samples_leaf=settings.min_samples_leaf,
        # sklearn draws each tree's rows with probability proportional to the weight, so the
        # weights act through the sample and the cap bounds every tree's size.
        max_samples=min(settings.max_samples, x.shape[0]),
        warm_start=True,
        n_jobs=n_jobs,
        random_state=random_state,
    )
    growing = StageProgress(progress, 0.2, 0.9)
    grown = 0
    while grown < settings.n_estimators:
        grown = min(settings.n_estimators, grown + settings.chunk)
        forest.set_params(n_estimators=grown)
        forest.fit(x, y, sample_weight=weight)
        growing(grown / settings.n_estimators, f"grown {grown} of {settings.n_estimators} trees")
    return forest


def _channel_rate(channels: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Each row's channel-pooled rate (over the rows given)."""
    names, inverse = np.unique(channels.astype(str), return_inverse=True)
    sums_num = np.bincount(inverse, weights=num, minlength=len(names))
    sums_den = np.bincount(inverse, weights=den, minlength=len(names))
    rate: np.ndarray = (sums_num / np.maximum(sums_den, 1e-12))[inverse]
    return rate


def precision_weights(relative: np.ndarray, trials: np.ndarray, channel_rate: np.ndarray) -> np.ndarray:
    """Inverse-variance weights of the relative rate: binomial noise (1-p)/(n p) plus the spread
    between creatives that no amount of traffic removes (method of moments). A creative seen 100 times
    weighs far less than one seen 100,000 times, but one seen 10 million times does not drown the rest."""
    p = np.clip(channel_rate, 1e-6, 1 - 1e-6)
    sampling = (1 - p) / (trials * p)
    between = max(0.0, float(np.mean((relative - 1.0) ** 2) - np.mean(sampling)))
    weight: np.ndarray = 1.0 / (between + sampling)
    return weight / float(weight.mean())


def weighted_r2(y: np.ndarray, predicted: np.ndarray, weight: np.ndarray) -> float | None:
    mean = np.average(y, weights=weight)
    total = float(np.sum(weight * (y - mean) ** 2))
    if total <= 0:
        return None
    return 1.0 - float(np.sum(weight * (y - predicted) ** 2)) / total
