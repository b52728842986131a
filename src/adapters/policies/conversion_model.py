"""Step 5: the conversion model, a logistic regression (scikit-learn) of "the customer-week
converted" on weekly frequency, its square and the channel mix: a second view of where more contacts
stop paying off."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from adapters.policies.events import OTHER_CHANNELS
from adapters.policies.remarks import Remarks
from domain.policies.result import (
    CHANNEL_FEATURE_PREFIX,
    FREQUENCY,
    FREQUENCY_SQUARED,
    INTERCEPT,
    ConversionModel,
    ModelSamples,
)

KIND = "logistic_regression"
TARGET = "customer-week has at least one conversion"
# Fewer converted or non-converted customer-weeks than this (or min_samples_per_band) and no model.
MIN_CLASS_SIZE = 20
# Beyond this the odds ratio exp(coefficient) overflows a float.
MAX_EXP_ARGUMENT = 700


def fit_conversion_model(
    weeks: pl.DataFrame,
    model_channels: Sequence[str],
    *,
    min_samples: int,
    random_state: int,
    max_rows: int,
    remarks: Remarks,
) -> ConversionModel | None:
    """None without customer-weeks or with too few of either class (a note says so).

    Above `max_rows` the model is fitted on a seeded sample of customer-weeks: coefficients are
    stable long before a million rows, and the fit stays well under a second.
    """
    if weeks.height == 0:
        return None
    f = weeks.get_column("f").to_numpy().astype(np.float64)
    y = (weeks.get_column("conv").to_numpy() > 0).astype(np.int8)
    names = [FREQUENCY, FREQUENCY_SQUARED]
    columns = [f, f * f]
    # Channel mix = share of the week's contacts per channel; the most used channel is the
    # reference (its share is implied by the others), so coefficients read "vs the reference".
    counts = {name: weeks.get_column(f"ch{i}").to_numpy() for i, name in enumerate(model_channels)}
    reference = max(model_channels, key=lambda name: (counts[name].sum(), name)) if model_channels else None
    covered = np.zeros_like(f)
    for name in model_channels:
        covered += counts[name]
        if name != reference:
            names.append(f"{CHANNEL_FEATURE_PREFIX}{name}")
            columns.append(counts[name] / f)
    if np.any(covered < f):
        names.append(f"{CHANNEL_FEATURE_PREFIX}{OTHER_CHANNELS}")
        columns.append((f - covered) / f)
    x = np.column_stack(columns)
    positives = int(y.sum())
    negatives = int(y.size - positives)
    minimum = max(MIN_CLASS_SIZE, min_samples)
    if positives < minimum or negatives < minimum:
        remarks.notes.append(
            f"The conversion model needs at least {minimum} converted and {minimum} non-converted "
            f"customer-weeks; the data has {positives:,} and {negatives:,}. It was not fitted."
        )
        return None
    # group_by returns rows in no fixed order: sort by content so the seeded sample and split
    # see the same rows in the same order on every run.
    order = np.lexsort((*[x[:, j] for j in range(x.shape[1] - 1, -1, -1)], y)[::-1])
    x, y = x[order], y[order]
    rng = np.random.default_rng(random_state)
    sampled = y.size > max_rows
    if sampled:
        keep = np.sort(rng.choice(y.size, size=max_rows, replace=False))
        x, y = x[keep], y[keep]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=random_state, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    # Newton-Cholesky: few features and many rows, so a handful of exact Newton steps beat L-BFGS.
    model = LogisticRegression(solver="newton-cholesky", max_iter=100).fit(scaler.transform(x_train), y_train)
    auc = float(roc_auc_score(y_test, model.predict_proba(scaler.transform(x_test))[:, 1]))
    # Back to original units: a coefficient per extra contact, per unit of channel share.
    coef = model.coef_[0] / scaler.scale_
    intercept = float(model.intercept_[0] - np.sum(model.coef_[0] * scaler.mean_ / scaler.scale_))
    per_feature = [(n, float(c)) for n, c in zip(names, coef, strict=True)]
    mix = x[:, 2:].mean(axis=0)
    grid = np.arange(1, int(min(f.max(), 100)) + 1, dtype=np.float64)
    logits = intercept + coef[0] * grid + coef[1] * grid * grid + float(np.dot(coef[2:], mix))
    p = 1.0 / (1.0 + np.exp(-logits))
    return ConversionModel(
        kind=KIND,
        target=TARGET,
        features=tuple(names),
        reference_channel=reference,
        coefficients=((INTERCEPT, intercept), *per_feature),
        odds_ratios=tuple((n, math.exp(c) if c < MAX_EXP_ARGUMENT else None) for n, c in per_feature),
        auc=auc,
        samples=ModelSamples(train=int(y_train.size), test=int(y_test.size), sampled=bool(sampled)),
        peak_frequency=int(grid[int(np.argmax(p))]),
        conversion_probability_at_peak=float(p.max()),
    )
