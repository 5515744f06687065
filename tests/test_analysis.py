import numpy as np
import pytest

from facerepro.evaluation.analysis import (
    active_counts,
    angular_fisher_score,
    angular_fisher_terms,
    best_neurons,
    binarize,
    neuron_selectiveness,
    one_vs_rest,
    sparsity_histograms,
    sparsity_summary,
)

# 3 images x 4 neurons; active (> 0): row 0 -> neurons 1, 3; row 1 -> 0; row 2 -> 0, 1, 3.
ACTS = np.array([[0.0, 1.5, 0.0, 2.0],
                 [0.3, 0.0, 0.0, 0.0],
                 [1.0, 1.0, -1.0, 0.5]])


def test_active_counts_by_hand():
    per_image, per_neuron = active_counts(ACTS)
    np.testing.assert_array_equal(per_image, [2, 1, 3])
    np.testing.assert_array_equal(per_neuron, [2, 2, 0, 2])
    # threshold 0.9 keeps 1.5, 2.0, 1.0, 1.0
    per_image, per_neuron = active_counts(ACTS, threshold=0.9)
    np.testing.assert_array_equal(per_image, [2, 0, 2])
    np.testing.assert_array_equal(per_neuron, [1, 2, 0, 1])


def test_sparsity_summary_by_hand():
    s = sparsity_summary(ACTS)
    assert (s["n_images"], s["n_neurons"]) == (3, 4)
    assert s["per_image_mean"] == pytest.approx(2.0)
    assert s["per_image_std"] == pytest.approx(np.sqrt(2 / 3))  # population std of 2, 1, 3
    assert s["per_image_fraction"] == pytest.approx(2 / 4)
    assert s["per_neuron_mean"] == pytest.approx(1.5)
    assert s["per_neuron_std"] == pytest.approx(np.sqrt(0.75))  # of 2, 2, 0, 2
    assert s["per_neuron_fraction"] == pytest.approx(1.5 / 3)


def test_sparsity_histograms_span_full_range():
    h = sparsity_histograms(ACTS, bins=4)
    np.testing.assert_allclose(h["per_image"]["edges"], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(h["per_image"]["counts"], [0, 1, 1, 1])  # 1, 2, 3 (of 4)
    np.testing.assert_allclose(h["per_neuron"]["edges"], [0, 0.75, 1.5, 2.25, 3])
    np.testing.assert_array_equal(h["per_neuron"]["counts"], [1, 0, 3, 0])  # 0, 2, 2, 2 (of 3)


def test_binarize():
    bits = binarize(ACTS)
    assert bits.dtype == np.uint8
    np.testing.assert_array_equal(bits, [[0, 1, 0, 1], [1, 0, 0, 0], [1, 1, 0, 1]])


def brute_force_selectiveness(a: np.ndarray, targets: np.ndarray) -> np.ndarray:
    out = np.zeros((targets.shape[1], a.shape[1]))
    for t in range(targets.shape[1]):
        y = targets[:, t]
        for d in range(a.shape[1]):
            best = 0.0
            for th in np.concatenate([[-np.inf], np.unique(a[:, d])]):
                high = a[:, d] > th
                for pred in (high, ~high):
                    best = max(best, 0.5 * (pred[y].mean() + (~pred[~y]).mean()))
            out[t, d] = best
    return out


def test_selectiveness_matches_brute_force():
    rng = np.random.default_rng(0)
    # ReLU-like with rounding: many exact zeros and other ties, which cuts must not split.
    a = np.round(np.maximum(rng.normal(size=(60, 7)), 0.0), 1)
    labels = rng.integers(0, 4, size=60)
    _, identity = one_vs_rest(labels)
    attribute = rng.random((60, 2)) < 0.2
    targets = np.concatenate([identity, attribute], axis=1)
    got = neuron_selectiveness(a, targets)
    assert got.shape == (6, 7)
    np.testing.assert_allclose(got, brute_force_selectiveness(a, targets), atol=1e-12)


def test_selective_and_anti_selective_neurons_and_best():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    rng = np.random.default_rng(1)
    excited = np.where(y, 2.0, 0.0) + rng.random(10) * 0.5      # target above every other
    inhibited = np.where(y, 0.0, 1.0 + rng.random(10))          # target always zero
    constant = np.ones(10)                                      # no cut possible
    a = np.stack([constant, excited, inhibited], axis=1)
    acc = neuron_selectiveness(a, y[:, None])
    np.testing.assert_allclose(acc, [[0.5, 1.0, 1.0]])
    best, best_acc = best_neurons(acc)
    assert best.tolist() == [1] and best_acc.tolist() == [1.0]  # lowest index on ties


def test_selectiveness_never_cuts_inside_ties():
    # Sorted, the zeros hold two negatives then two positives; a cut between them would be
    # perfect, but no threshold splits equal values: best is 0 | 1 -> TPR 1/3, TNR 1 -> 2/3.
    a = np.array([[0.0], [0.0], [0.0], [0.0], [1.0]])
    y = np.array([[False], [False], [True], [True], [True]])
    assert neuron_selectiveness(a, y)[0, 0] == pytest.approx(2 / 3)


def test_one_vs_rest_and_bad_targets():
    classes, targets = one_vs_rest(np.array([5, 2, 5]))
    assert classes.tolist() == [2, 5]
    np.testing.assert_array_equal(targets, [[False, True], [True, False], [False, True]])
    with pytest.raises(ValueError, match="positive and negative"):
        neuron_selectiveness(ACTS, np.ones((3, 1), bool))


def test_angular_fisher_by_hand():
    # Class 0: (1,0), (0,1), mean (.5,.5); class 1: (-1,1), (-1,-1), mean (-1,0). Every point
    # is 45 degrees from its class mean: S_w = 4 (1 - 1/sqrt2). Global mean (-1/4, 1/4) is
    # orthogonal to (.5,.5) and 45 degrees from (-1,0): S_b = 2 * 1 + 2 (1 - 1/sqrt2).
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0], [-1.0, -1.0]])
    y = np.array([0, 0, 1, 1])
    s_w, s_b = angular_fisher_terms(x, y)
    r = 1 / np.sqrt(2)
    assert s_w == pytest.approx(4 * (1 - r))
    assert s_b == pytest.approx(2 + 2 * (1 - r))
    assert angular_fisher_score(x, y) == pytest.approx(4 * (1 - r) / (2 + 2 * (1 - r)))


def test_angular_fisher_global_mean_weights_images():
    # 3 images at (1,0), 1 at (0,1): m = (3/4, 1/4), 3/sqrt10 and 1/sqrt10 cosines to the class
    # means (the unweighted mean of class means, (1/2, 1/2), would give 1/sqrt2 for both).
    x = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    s_w, s_b = angular_fisher_terms(x, np.array([0, 0, 0, 1]))
    assert s_w == pytest.approx(0.0, abs=1e-12)
    assert s_b == pytest.approx(3 * (1 - 3 / np.sqrt(10)) + (1 - 1 / np.sqrt(10)))


def test_angular_fisher_invariances():
    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(3), 5)
    x = rng.normal(size=(15, 4)) + 3 * rng.normal(size=(3, 4))[y]
    afs = angular_fisher_score(x, y)
    assert angular_fisher_score(7.3 * x, y) == pytest.approx(afs, rel=1e-12)
    # The means are of the raw vectors, so rescaling one vector moves its class mean.
    x_one = x.copy()
    x_one[0] *= 5.0
    assert angular_fisher_score(x_one, y) != pytest.approx(afs, rel=1e-6)
    # Collapsed classes: every vector a positive multiple of its class direction.
    collapsed = rng.normal(size=(3, 4))[y] * rng.uniform(0.5, 2.0, size=(15, 1))
    s_w, s_b = angular_fisher_terms(collapsed, y)
    assert s_w == pytest.approx(0.0, abs=1e-12) and s_b > 0.1
    assert angular_fisher_score(collapsed, y) == pytest.approx(0.0, abs=1e-12)


def test_angular_fisher_needs_two_classes():
    with pytest.raises(ValueError, match="two classes"):
        angular_fisher_score(np.ones((3, 2)), np.zeros(3))
