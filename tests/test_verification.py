import numpy as np
import pytest

from facerepro.evaluation.verification import best_threshold, cosine, k_fold


def test_best_threshold_known_answer():
    # sorted: 0.1 d, 0.2 s, 0.3 d, 0.6 s, 0.7 s. Cuts at 0.15 and at 0.45 both get 4/5 right
    # (every other cut fewer); the tie rule picks the lower one.
    scores = np.array([0.6, 0.1, 0.7, 0.3, 0.2])
    same = np.array([True, False, True, False, True])
    threshold, acc = best_threshold(scores, same)
    assert threshold == pytest.approx(0.15)
    assert acc == pytest.approx(4 / 5)


def test_best_threshold_separable_and_tie_rule():
    threshold, acc = best_threshold(np.array([0.0, 1.0, 2.0, 3.0]),
                                    np.array([False, False, True, True]))
    assert (threshold, acc) == (1.5, 1.0)
    # every cut equally good (all accuracy 1/2): the lowest candidate, -inf, wins
    threshold, acc = best_threshold(np.array([1.0, 2.0]), np.array([True, False]))
    assert threshold == -np.inf and acc == 0.5


def test_threshold_never_splits_equal_scores():
    threshold, acc = best_threshold(np.array([1.0, 1.0, 1.0]), np.array([True, False, True]))
    assert acc == pytest.approx(2 / 3) and threshold == -np.inf


def test_k_fold_uses_only_training_folds():
    # Folds 0 and 1 say "same above 0.5"; fold 2 is inverted. Its threshold (0.5) comes from
    # folds 0 and 1 alone, so both of its pairs are called wrong.
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.1, 0.9])
    same = np.array([True, False, True, False, True, False])
    folds = np.array([0, 0, 1, 1, 2, 2])
    result = k_fold(scores, same, folds)
    assert result["fold_accuracy"][2] == 0.0
    assert result["folds"] == 3 and result["pairs"] == 6
    assert result["accuracy_mean"] == pytest.approx(np.mean(result["fold_accuracy"]))


def test_k_fold_perfect_and_auc():
    rng = np.random.default_rng(0)
    same = rng.random(600) < 0.5
    scores = np.where(same, 1.0, -1.0) + rng.normal(0, 0.1, 600)
    result = k_fold(scores, same, np.repeat(np.arange(10), 60))
    assert result["accuracy_mean"] == 1.0 and result["accuracy_std"] == 0.0
    assert result["auc"] == 1.0


def test_k_fold_matches_brute_force_threshold_search():
    rng = np.random.default_rng(1)
    same = rng.random(400) < 0.5
    scores = same * 0.8 + rng.normal(0, 1, 400)
    folds = np.repeat(np.arange(10), 40)
    result = k_fold(scores, same, folds)
    for f in range(10):
        train = folds != f
        grid = np.concatenate([[-np.inf], np.sort(scores[train]), [np.inf]])
        accs = [np.mean((scores[train] >= t) == same[train]) for t in grid]
        threshold, best = best_threshold(scores[train], same[train])
        assert best == pytest.approx(max(accs))
        assert result["fold_threshold"][f] == threshold
        expected = np.mean((scores[~train] >= threshold) == same[~train])
        assert result["fold_accuracy"][f] == pytest.approx(expected)


def test_cosine_known_values():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [-3.0, -4.0]])
    np.testing.assert_allclose(cosine(a, b), [0.0, 1.0, -1.0])
