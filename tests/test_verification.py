import numpy as np
import pytest

from facerepro.evaluation.verification import (
    best_threshold,
    cosine,
    equal_error_rate,
    euclidean,
    far_threshold,
    hamming,
    k_fold,
    l1,
    set_scores,
)


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


def test_threshold_on_tied_hamming_scores_is_one_that_exists():
    # Codes 2, 1, 1 and 0 bits apart: scores -2, -1, -1, 0; the two pairs at -1 are one
    # different and one same person. Cutting between them would give 4/4, but no threshold
    # separates equal scores: t = -1 calls both "same". The best real cuts, at -1.5 and at
    # -0.5, get 3/4; the lower one is taken.
    a = np.array([[1, 1], [1, 1], [1, 1], [1, 1]])
    b = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]])
    scores = hamming(a, b)
    np.testing.assert_array_equal(scores, [-2, -1, -1, 0])
    same = np.array([False, False, True, True])
    threshold, acc = best_threshold(scores, same)
    assert (threshold, acc) == (-1.5, 0.75)
    assert np.mean((scores >= threshold) == same) == acc


def test_k_fold_uses_only_training_folds():
    # Folds 0 and 1 say "same above 0.5"; fold 2 is inverted. Its threshold (0.5) comes from
    # folds 0 and 1 alone, so both of its pairs are called wrong.
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.1, 0.9])
    same = np.array([True, False, True, False, True, False])
    folds = np.array([0, 0, 1, 1, 2, 2])
    result = k_fold(scores, same, folds)
    assert result["per_fold"]["accuracy"][2] == 0.0
    assert result["n"]["folds"] == 3 and result["n"]["pairs"] == 6
    folds = result["per_fold"]["accuracy"]
    assert result["values"]["accuracy_mean"] == pytest.approx(np.mean(folds))


def test_k_fold_items_are_each_pairs_correctness():
    # The same pairs as above. Fold 0's training pairs (0.8 S, 0.2 D, 0.1 S, 0.9 D): the cuts
    # at -inf, 0.5 and +inf each get 2 of 4 right, and the tie rule takes -inf, so fold 0
    # calls both its pairs "same": pair 0 right, pair 1 wrong. Fold 1 likewise; fold 2's
    # threshold (0.5) gets both its pairs wrong.
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.1, 0.9])
    same = np.array([True, False, True, False, True, False])
    items = k_fold(scores, same, np.array([0, 0, 1, 1, 2, 2]))["items"]
    assert items["accuracy_mean"] == {"ids": ["0", "1", "2", "3", "4", "5"],
                                      "values": [1.0, 0.0, 1.0, 0.0, 0.0, 0.0]}
    assert items["val@far=0.01"]["ids"] == ["0", "2", "4"]     # VAL counts the same pairs


def test_k_fold_items_average_to_the_summaries_with_unequal_folds():
    rng = np.random.default_rng(3)
    same = rng.random(500) < 0.5
    scores = rng.normal(size=500) + same
    result = k_fold(scores, same, rng.integers(0, 7, 500))
    for key in ("accuracy_mean", "val@far=0.01", "val@far=0.001"):
        assert np.mean(result["items"][key]["values"]) == pytest.approx(result["values"][key])


def test_k_fold_perfect_and_auc():
    rng = np.random.default_rng(0)
    same = rng.random(600) < 0.5
    scores = np.where(same, 1.0, -1.0) + rng.normal(0, 0.1, 600)
    result = k_fold(scores, same, np.repeat(np.arange(10), 60))
    assert result["values"]["accuracy_mean"] == 1.0 and result["values"]["accuracy_std"] == 0.0
    assert result["values"]["auc"] == 1.0


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
        assert result["per_fold"]["threshold"][f] == threshold
        expected = np.mean((scores[~train] >= threshold) == same[~train])
        assert result["per_fold"]["accuracy"][f] == pytest.approx(expected)


def test_cosine_known_values():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [-3.0, -4.0]])
    np.testing.assert_allclose(cosine(a, b), [0.0, 1.0, -1.0])


def test_distance_scorers_known_values():
    a = np.array([[1.0, 2.0, -1.0], [0.0, 0.0, 3.0]])
    b = np.array([[1.0, 0.0, 1.0], [2.0, -1.0, 3.0]])
    np.testing.assert_allclose(euclidean(a, b), [-8.0, -5.0])
    np.testing.assert_allclose(l1(a, b), [-4.0, -3.0])
    # codes (a > 0): 110 vs 101 -> 2 bits differ; 001 vs 101 -> 1
    np.testing.assert_allclose(hamming(a, b), [-2.0, -1.0])


def test_far_threshold_known_answers():
    diff = np.array([0.9, 0.5, 0.1, 0.3, 0.7])      # descending: .9 .7 .5 .3 .1
    assert far_threshold(diff, 0.2) == pytest.approx(0.9)     # 1 of 5 at >= 0.9
    assert far_threshold(diff, 0.4) == pytest.approx(0.7)
    assert far_threshold(diff, 0.3) == pytest.approx(0.8)     # halfway between 1/5 and 2/5
    t = far_threshold(diff, 0.01)                             # below the resolution: FAR 0
    assert t > 0.9 and np.mean(diff >= t) == 0.0
    # ties: FAR(0.5) jumps from 1/4 to 3/4 at once
    tied = np.array([0.9, 0.5, 0.5, 0.1])
    assert far_threshold(tied, 0.5) == pytest.approx(0.5 + 0.4 * 0.25 / 0.5)


def test_equal_error_rate_known_answer():
    # same: 0.4 0.6 0.8 0.9 ; different: 0.1 0.2 0.3 0.7. At t = 0.7 FAR = 1/4 and FRR = 1/4.
    scores = np.array([0.4, 0.6, 0.8, 0.9, 0.1, 0.2, 0.3, 0.7])
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    assert equal_error_rate(same, scores) == pytest.approx(0.25)
    assert equal_error_rate(same, np.where(same, 1.0, 0.0)) == 0.0


def independent_protocol(scores, same, folds, far):
    """The protocol written again with loops: accuracy and VAL per fold."""
    acc, val, fa = [], [], []
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        cands = np.sort(np.unique(scores[tr]))
        cands = np.concatenate([[-np.inf], (cands[1:] + cands[:-1]) / 2, [np.inf]])
        best_t, best_a = None, -1.0
        for t in cands:                      # ascending, strict ">" keeps the lowest on ties
            a = np.mean((scores[tr] >= t) == same[tr])
            if a > best_a:
                best_t, best_a = t, a
        acc.append(np.mean((scores[te] >= best_t) == same[te]))
        d = np.sort(scores[tr & ~same])[::-1]
        k = far * len(d)                      # distinct scores: FAR(d[i]) = (i + 1) / n
        if k < 1:
            t = np.nextafter(d[0], np.inf)
        else:
            lo = int(np.floor(k)) - 1
            frac = k - np.floor(k)
            t = d[lo] if frac == 0 or lo + 1 >= len(d) else d[lo] + frac * (d[lo + 1] - d[lo])
        val.append(np.mean(scores[te & same] >= t))
        fa.append(np.mean(scores[te & ~same] >= t))
    return np.array(acc), np.array(val), np.array(fa)


@pytest.mark.parametrize("far", [1e-3, 0.05, 0.1234])
def test_k_fold_agrees_with_an_independent_implementation(far):
    rng = np.random.default_rng(7)
    same = np.tile(np.repeat([True, False], 30), 10)
    folds = np.repeat(np.arange(10), 60)
    scores = same * 1.2 + rng.normal(0, 1, 600)
    result = k_fold(scores, same, folds, fars=[far])
    acc, val, fa = independent_protocol(scores, same, folds, far)
    np.testing.assert_allclose(result["per_fold"]["accuracy"], acc)
    np.testing.assert_allclose(result["per_fold"][f"val@far={far:g}"], val)
    np.testing.assert_allclose(result["per_fold"][f"far@far={far:g}"], fa)
    assert result["values"][f"val@far={far:g}"] == pytest.approx(val.mean())
    assert result["values"]["accuracy_std"] == pytest.approx(acc.std(ddof=1))
    assert result["values"]["far_resolution"] == pytest.approx(1 / 30)
    assert result["n"] == {"pairs": 600, "folds": 10, "same": 300, "different": 300}


def test_set_scores_equal_the_mean_over_all_frame_pairs():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(40, 5))
    sets = np.repeat(["a", "b", "c", "d"], 10)
    order = rng.permutation(40)
    pa, pb = np.array(["a", "a", "c"]), np.array(["b", "c", "d"])
    for metric, n in (("cosine", 4), ("euclidean", 7), ("cosine", 100)):
        expected = []
        for s1, s2 in zip(pa, pb, strict=True):
            f1 = feats[sets == s1][np.argsort(order[sets == s1])][:n]
            f2 = feats[sets == s2][np.argsort(order[sets == s2])][:n]
            pair = [cosine(x[None], y[None])[0] if metric == "cosine"
                    else -np.sum((x - y) ** 2) for x in f1 for y in f2]
            expected.append(np.mean(pair))
        got = set_scores(feats, sets, order, pa, pb, n_frames=n, metric=metric)
        np.testing.assert_allclose(got, expected, rtol=1e-10)
