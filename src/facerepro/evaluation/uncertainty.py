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
intervals. For a run trained once the resampled unit is the test item: the variance of
training is not in these intervals. A run trained with several seeds (the config's ``seeds``)
has per-item values per seed, and its numbers go through a two-level bootstrap
(:func:`seeded_interval`, :func:`seeded_difference`; Davison & Hinkley 1997, Sec. 3.8): each
resample draws seeds with replacement for every run, then test items with replacement, the same
items for every run and seed, since all were scored on the same test set. The spread of the
resampled statistic then holds both the seeds' and the test items' variance. Drawing seeds with
replacement shrinks the seed variance by ``(k - 1) / k`` for ``k`` seeds (the plug-in variance),
so three seeds give intervals somewhat too narrow on the seed side; the report says how many
seeds each number has.
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
    return PairedDifference(float(d.mean()), low, high, _two_sided_p(means), "bootstrap")


def _two_sided_p(stats: np.ndarray) -> float:
    """Twice the smaller share of resampled differences on either side of zero (1 when no
    resample moves)."""
    return float(min(1.0, 2 * min(np.mean(stats <= 0), np.mean(stats >= 0))))


def align(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Two item records' values in one item order, or None when they cover different items."""
    if sorted(a["ids"]) != sorted(b["ids"]) or len(set(a["ids"])) != len(a["ids"]):
        return None
    where = {item: i for i, item in enumerate(b["ids"])}
    order = [where[item] for item in a["ids"]]
    return np.asarray(a["values"], float), np.asarray(b["values"], float)[order]


def _two_level(runs: Sequence[np.ndarray], signs: Sequence[float]) -> np.ndarray:
    """Resampled ``sum_j sign_j * mean over seeds of run j of mean over items`` (module
    docstring): ``runs[j]`` is a (seeds, items) array, every run scored on the same items."""
    rng = np.random.default_rng(SEED)
    n = runs[0].shape[1]
    stats = []
    for start in range(0, RESAMPLES, 250):
        size = min(250, RESAMPLES - start)
        # item resampling as counts: run @ counts.T is every seed's resampled item mean at once
        weights = rng.multinomial(n, np.full(n, 1 / n), size=size) / n
        total = np.zeros(size)
        for values, sign in zip(runs, signs, strict=True):
            means = values @ weights.T                       # (seeds, resamples)
            seeds = rng.integers(len(values), size=(size, len(values)))
            total += sign * means[seeds, np.arange(size)[:, None]].mean(axis=1)
        stats.append(total)
    return np.concatenate(stats)


def _percentile(stats: np.ndarray, level: float) -> tuple[float, float]:
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def seeded_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Two-level bootstrap interval of the mean of a run's (seeds, items) values."""
    return _percentile(_two_level([np.asarray(values, float)], [1.0]), level)


def seeded_difference(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> PairedDifference:
    """Compare two runs' (seeds, items) values on the same items (same order) by the two-level
    bootstrap: the difference of their seed-and-item means, its percentile interval and a
    two-sided p-value (twice the smaller share of resampled differences on either side of
    zero)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"seeded values need the same items: {a.shape} vs {b.shape}")
    stats = _two_level([a, b], [1.0, -1.0])
    low, high = _percentile(stats, level)
    return PairedDifference(float(a.mean() - b.mean()), low, high, _two_sided_p(stats),
                            "seed+item bootstrap")
