"""Intervals and paired tests (evaluation/uncertainty.py): known answers worked by hand, scipy
as the independent check, and the invariants the report relies on."""

import numpy as np
import pytest
from scipy.stats import binomtest

from facerepro.evaluation.uncertainty import (
    align,
    mcnemar_exact,
    mean_interval,
    paired_difference,
)


def _outcomes(both, only_a, only_b, neither):
    """Paired 0/1 outcomes with the given counts of each kind of item."""
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return np.array(a), np.array(b)


@pytest.mark.parametrize(("only_a", "only_b", "p"), [
    (0, 6, 2 / 64),                    # 2 * P(X <= 0), X ~ Bin(6, 1/2) = 2 * 1/64
    (2, 8, 2 * (1 + 10 + 45) / 1024),  # 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10
    (5, 5, 1.0),                       # a tie: 2 * P(X <= 5) > 1, capped
    (0, 0, 1.0)])                      # no discordant pair: nothing to test
def test_mcnemar_known_answers(only_a, only_b, p):
    a, b = _outcomes(both=50, only_a=only_a, only_b=only_b, neither=20)
    assert mcnemar_exact(a, b) == pytest.approx(p, rel=1e-12)
    assert mcnemar_exact(b, a) == pytest.approx(p, rel=1e-12)   # two-sided: symmetric


def test_mcnemar_agrees_with_scipy_binomtest_on_random_outcomes():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 400))
        a, b = rng.random(n) < rng.random(), rng.random(n) < rng.random()
        only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
        expected = 1.0 if only_a + only_b == 0 else \
            binomtest(only_a, only_a + only_b, 0.5).pvalue
        assert mcnemar_exact(a, b) == pytest.approx(expected, rel=1e-9)


def test_paired_difference_on_correctness_uses_mcnemar():
    a, b = _outcomes(both=50, only_a=8, only_b=2, neither=20)
    result = paired_difference(a, b)
    assert result.diff == pytest.approx((58 - 52) / 80)
    assert result.test == "McNemar" and result.p == pytest.approx(2 * 56 / 1024)
    assert not result.significant()
    assert result.low < result.diff < result.high


def test_paired_bootstrap_on_real_valued_items():
    rng = np.random.default_rng(1)
    a = rng.normal(size=500)
    shifted = paired_difference(a + 0.5 + rng.normal(scale=0.1, size=500), a)
    assert shifted.test == "bootstrap" and shifted.significant()
    assert shifted.low < 0.5 < shifted.high
    # The pairing removes what the two runs share: the same items, unpaired, would be noise.
    noise = paired_difference(a + rng.normal(scale=0.1, size=500), a)
    assert not noise.significant() and noise.low < 0 < noise.high
    assert paired_difference(a, a).p == 1.0


def test_mean_interval_matches_the_normal_approximation_and_repeats():
    rng = np.random.default_rng(2)
    x = (rng.random(4000) < 0.8).astype(float)
    low, high = mean_interval(x)
    half = 1.96 * np.sqrt(x.mean() * (1 - x.mean()) / len(x))
    assert low == pytest.approx(x.mean() - half, abs=2e-3)
    assert high == pytest.approx(x.mean() + half, abs=2e-3)
    assert mean_interval(x) == (low, high)          # a fixed seed: the same every time
    assert mean_interval([1.0, 1.0, 1.0]) == (1.0, 1.0)


def test_align_pairs_items_by_id_and_refuses_other_items():
    a = {"ids": ["p0", "p1", "p2"], "values": [1.0, 0.0, 1.0]}
    b = {"ids": ["p2", "p0", "p1"], "values": [0.0, 1.0, 1.0]}
    x, y = align(a, b)
    assert x.tolist() == [1.0, 0.0, 1.0] and y.tolist() == [1.0, 1.0, 0.0]
    assert align(a, {"ids": ["p0", "p1", "p3"], "values": [1.0, 1.0, 1.0]}) is None
    with pytest.raises(ValueError, match="same items"):
        paired_difference([1.0, 0.0], [1.0])
