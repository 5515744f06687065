"""How sure a reproduced number and a claimed comparison are: 95% intervals and paired tests.

A metric that is a mean over test items (verification pairs, faces, neurons, attributes,
classes) keeps its per-item values in the metrics file (``items``: ids and values whose mean is
the reported value, :func:`facerepro.evaluation.metrics.items`). From them:

- a number's interval is the percentile bootstrap of the mean over its items;
- two runs scored on the same items are compared item by item (:func:`paired_difference`): the
  difference of their means, the percentile bootstrap interval of the mean per-item difference
  (both runs resampled together: paired), and a two-sided p-value from the exact McNemar test
  when every item is 0 or 1 (per-pair correctness), else from the bootstrap itself (twice the
  smaller share of resampled differences on either side of zero).

Bootstraps draw :data:`RESAMPLES` resamples from a fixed seed, so a rerun gives the same
intervals. The resampled unit is the test item: the variance of training (another seed, another
draw of training data) is not in these intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000
SEED = 0


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value of paired 0/1 outcomes ``a`` and ``b``.

    Only the discordant items count: ``n01`` where only ``a`` is 1, ``n10`` where only ``b`` is.
    Under the null each discordant item goes either way with probability 1/2, so
    ``p = min(1, 2 * P(Binomial(n01 + n10, 1/2) <= min(n01, n10)))``, and 1 without
    discordant items.
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
    return min(1.0, float(2 * tail / 2 ** n))


def _bootstrap(values: np.ndarray, level: float) -> tuple[float, float, np.ndarray]:
    """Percentile bootstrap of the mean (fixed seed): the interval's ends and the resampled
    means. Constant values need no resampling."""
    from scipy.stats import bootstrap

    if len(values) < 2 or np.all(values == values[0]):
        mean = float(values.mean())
        return mean, mean, np.full(1, mean)
    result = bootstrap((values,), np.mean, n_resamples=RESAMPLES, method="percentile",
                       confidence_level=level, vectorized=True, batch=100,
                       rng=np.random.default_rng(SEED))
    low, high = result.confidence_interval
    return float(low), float(high), result.bootstrap_distribution


def mean_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    low, high, _ = _bootstrap(np.asarray(values, float), level)
    return low, high


@dataclass(frozen=True)
class PairedDifference:
    """``mean(a) - mean(b)`` on the same items, its interval and the test's p-value."""

    diff: float
    low: float
    high: float
    p: float
    test: str          # "McNemar" (0/1 items) or "bootstrap"

    def significant(self, alpha: float = 1 - LEVEL) -> bool:
        return self.p < alpha


def paired_difference(a: Sequence[float], b: Sequence[float],
                      level: float = LEVEL) -> PairedDifference:
    """Compare two runs' per-item values on the same items (same order)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need the same items: {a.shape} vs {b.shape}")
    d = a - b
    low, high, means = _bootstrap(d, level)
    if np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all():
        return PairedDifference(float(d.mean()), low, high, mcnemar_exact(a, b), "McNemar")
    # twice the smaller share of resampled differences on either side of zero (1 at no change)
    p = min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0)))
    return PairedDifference(float(d.mean()), low, high, float(p), "bootstrap")


def align(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Two item records' values in one item order, or None when they cover different items."""
    if sorted(a["ids"]) != sorted(b["ids"]) or len(set(a["ids"])) != len(a["ids"]):
        return None
    where = {item: i for i, item in enumerate(b["ids"])}
    order = [where[item] for item in a["ids"]]
    return np.asarray(a["values"], float), np.asarray(b["values"], float)[order]
