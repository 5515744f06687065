from itertools import combinations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from facerepro.evaluation.attributes import (
    balanced_accuracy,
    imbalance_level,
    mean_balanced_accuracy,
)
from facerepro.evaluation.clustering import (
    agglomerative,
    clustering_scores,
    nmi,
    pairwise_scores,
)


def test_balanced_accuracy_matches_sklearn_per_attribute():
    rng = np.random.default_rng(0)
    truth = rng.random((80, 6)) < np.linspace(0.1, 0.9, 6)
    pred = np.where(rng.random((80, 6)) < 0.7, truth, ~truth)
    table = balanced_accuracy(truth, pred, [f"a{i}" for i in range(6)])
    expected = [balanced_accuracy_score(truth[:, i], pred[:, i]) for i in range(6)]
    assert np.allclose(table["balanced_accuracy"], expected)
    assert table.index.tolist() == [f"a{i}" for i in range(6)]
    summary = mean_balanced_accuracy(truth, pred)
    assert summary["mean"] == pytest.approx(np.mean(expected))
    assert (summary["n_scored"], summary["n_excluded"]) == (6, 0)


def test_balanced_accuracy_by_hand():
    # positives 0, 1 (one right: 1/2); negatives 2, 3, 4 (two right: 2/3)
    table = balanced_accuracy(np.array([[1], [1], [0], [0], [0]]),
                              np.array([[1], [0], [0], [0], [1]]), ["Smiling"])
    row = table.loc["Smiling"]
    assert (row["positives"], row["negatives"]) == (2, 3)
    assert row["balanced_accuracy"] == pytest.approx(0.5 * (1 / 2 + 2 / 3))


def test_attribute_missing_a_class_is_excluded_and_counted():
    truth = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]], bool)
    pred = np.array([[1, 0, 1], [1, 0, 1], [1, 1, 0], [0, 0, 1]], bool)
    names = ["Male", "Bald", "No_Beard"]
    table = balanced_accuracy(truth, pred, names)
    assert np.isnan(table.loc["Bald", "balanced_accuracy"])
    assert np.isnan(table.loc["No_Beard", "balanced_accuracy"])
    assert table.loc["Bald", "reason"] == "no positive test faces"
    assert table.loc["No_Beard", "reason"] == "no negative test faces"
    assert table.loc["Male", "reason"] == ""
    summary = mean_balanced_accuracy(truth, pred, names)
    assert summary["mean"] == pytest.approx(0.5 * (1 + 1 / 2))
    assert (summary["n_scored"], summary["n_excluded"]) == (1, 2)
    assert summary["excluded"] == {"Bald": "no positive test faces",
                                   "No_Beard": "no negative test faces"}


def test_balanced_accuracy_input_errors():
    with pytest.raises(ValueError, match="differ in shape"):
        balanced_accuracy(np.zeros((3, 2), bool), np.zeros((4, 2), bool))
    with pytest.raises(ValueError, match="boolean"):
        balanced_accuracy(np.full((2, 1), 2), np.zeros((2, 1), bool))
    with pytest.raises(ValueError, match="names"):
        balanced_accuracy(np.zeros((2, 2), bool), np.zeros((2, 2), bool), ["one"])


def test_imbalance_level():
    truth = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 0], [0, 0, 0]])
    level = imbalance_level(truth, ["a", "b", "c"])
    assert level.to_dict() == {"a": 25.0, "b": 0.0, "c": 50.0}


def _brute_pairwise(truth, pred):
    tp = fp = fn = 0
    for i, j in combinations(range(len(truth)), 2):
        same_id, same_cluster = truth[i] == truth[j], pred[i] == pred[j]
        tp += same_id and same_cluster
        fp += same_cluster and not same_id
        fn += same_id and not same_cluster
    return tp / (tp + fp), tp / (tp + fn), 2 * tp / (2 * tp + fp + fn)


@pytest.mark.parametrize("n_clusters", [2, 5, 17])
def test_pairwise_scores_match_brute_force(n_clusters):
    rng = np.random.default_rng(n_clusters)
    truth = rng.integers(0, 6, 50)
    pred = np.where(rng.random(50) < 0.6, truth, rng.integers(0, n_clusters, 50)) * 7 + 3
    scores = pairwise_scores(truth, pred)
    assert [scores["precision"], scores["recall"], scores["f_measure"]] == pytest.approx(
        _brute_pairwise(truth, pred))


def test_pairwise_scores_by_hand_and_singletons():
    # same-cluster pairs (0,1) (0,2) (1,2), of which (0,1) is a true pair; true pairs (0,1) (2,3)
    scores = pairwise_scores(np.array([0, 0, 1, 1]), np.array([5, 5, 5, 9]))
    assert scores == pytest.approx({"precision": 1 / 3, "recall": 1 / 2, "f_measure": 0.4})
    singletons = pairwise_scores(np.array([0, 0, 1]), np.array([0, 1, 2]))
    assert np.isnan(singletons["precision"])
    assert singletons["recall"] == 0 and singletons["f_measure"] == 0


def test_nmi_perfect_and_relabel_invariant():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 5, 60)
    relabelled = np.array([40, 3, 17, 8, 21])[truth]
    assert nmi(truth, relabelled) == pytest.approx(1.0)
    noisy = np.where(rng.random(60) < 0.5, truth, rng.integers(0, 5, 60))
    assert nmi(truth, noisy) < 0.9
    assert nmi(truth, noisy) == pytest.approx(nmi(truth, np.array([9, 7, 5, 3, 1])[noisy]))


def _blobs(rng):
    centres = np.eye(8)[:3] * 5
    ids = np.repeat([0, 1, 2], 20)
    # random positive scales: cosine distance must ignore the norm
    features = (centres[ids] + rng.normal(0, 0.3, (60, 8))) * rng.uniform(0.1, 10, (60, 1))
    return features, ids


def test_agglomerative_recovers_blobs():
    features, ids = _blobs(np.random.default_rng(2))
    for labels in (agglomerative(features, n_clusters=3),
                   agglomerative(features, distance_threshold=0.5)):
        assert len(np.unique(labels)) == 3
        assert pairwise_scores(ids, labels)["f_measure"] == 1.0
    scores = clustering_scores(features, ids)
    assert scores["nmi"] == pytest.approx(1.0) and scores["n_clusters"] == 3.0
    assert all(isinstance(value, float) for value in scores.values())
    merged = clustering_scores(features, ids, n_clusters=2)
    assert merged["recall"] == 1.0 and merged["precision"] < 1.0


def test_agglomerative_argument_errors():
    features = np.random.default_rng(3).normal(size=(5, 3))
    with pytest.raises(ValueError, match="exactly one"):
        agglomerative(features)
    with pytest.raises(ValueError, match="exactly one"):
        agglomerative(features, n_clusters=2, distance_threshold=0.5)
    with pytest.raises(ValueError, match="ward"):
        agglomerative(features, n_clusters=2, linkage="ward")
