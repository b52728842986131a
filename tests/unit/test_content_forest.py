"""The forest's inputs: creatives weighted by how well their rate is measured."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.content.forest import precision_weights


def test_weights_grow_with_traffic_but_are_capped_by_the_spread_between_creatives() -> None:
    trials = np.array([100.0, 1_000.0, 100_000.0, 10_000_000.0])
    rate = np.full(4, 0.05)
    # No spread beyond sampling noise: weights are proportional to impressions.
    same = precision_weights(np.array([1.0, 1.0, 1.0, 1.0]), trials, rate)
    assert same / same[0] == pytest.approx(trials / trials[0])
    # A real spread between creatives: more traffic still weighs more, but 10M is not 100x 100k.
    spread = precision_weights(np.array([0.5, 1.5, 0.7, 1.3]), trials, rate)
    assert list(spread) == sorted(spread)
    assert spread[3] / spread[2] < 1.01
    assert spread[3] / spread[0] < 20
