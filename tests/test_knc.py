import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from facerepro.evaluation.knc import InstanceKNN, KNearestClusterClassifier, select_n_clusters


def unit(angles_deg) -> np.ndarray:
    """2-d unit vectors at these angles (degrees)."""
    a = np.radians(np.asarray(angles_deg, dtype=float))
    return np.column_stack([np.cos(a), np.sin(a)])


# Hand-made clusters: class A at 10, 120, 150 degrees, class B at 30 and 40 degrees; the
# query lies at 0 degrees, so q.mu = cos(angle):
#   A: cos 10 = 0.9848, cos 120 = -0.5000, cos 150 = -0.8660
#   B: cos 30 = 0.8660, cos 40  =  0.7660
# Retrieved in the order 10(A), 30(B), 40(B), 120(A), 150(A). Eq. 10 in log space,
# score(c) = min over c's retrieved clusters - log sum over the other classes' of e^{q.mu}:
#   N=1: only A retrieved: empty sum, A wins
#   N=2: A = 0.9848 - 0.8660 = 0.1188;              B = 0.8660 - 0.9848 = -0.1188  -> A
#   N=3: A = 0.9848 - log(2.3774 + 2.1512) = -0.5256; B = 0.7660 - 0.9848 = -0.2188  -> B
#   N=4: A = -0.5000 - 1.5104 = -2.0104;  B = 0.7660 - log(2.6773 + 0.6065) = -0.4230 -> B
#   N=5: A = -0.8660 - 1.5104 = -2.3764;  B = 0.7660 - log(3.7044) = -0.5435          -> B
# From N=3 on Eq. 10 says B although the nearest cluster is A's.
HAND_ANGLES = [10, 120, 150, 30, 40]
HAND_CLASSES = np.array(["A", "A", "A", "B", "B"])
QUERY = unit([0])


@pytest.mark.parametrize(("n", "expected"), [(1, "A"), (2, "A"), (3, "B"), (4, "B"), (5, "B")])
def test_eq10_hand_made_clusters(n, expected):
    clf = KNearestClusterClassifier(n_clusters=n).fit_clusters(unit(HAND_ANGLES), HAND_CLASSES)
    assert clf.predict(QUERY)[0] == expected


def test_eq10_differs_from_instance_knn_on_the_same_clusters():
    # Members one degree apart around each centroid; the 5 nearest members of the query (at
    # 8..12 degrees, cos 12 = 0.978 > cos 29 = 0.875) are all A's, so instance kNN says A.
    members = np.concatenate([np.arange(a - 2, a + 3) for a in HAND_ANGLES])
    labels = np.repeat(HAND_CLASSES, 5)
    assert InstanceKNN(n_neighbors=5).fit(unit(members), labels).predict(QUERY)[0] == "A"
    knc = KNearestClusterClassifier(n_clusters=3).fit_clusters(unit(HAND_ANGLES), HAND_CLASSES)
    assert knc.predict(QUERY)[0] == "B"


def test_n_capped_at_the_number_of_clusters():
    capped = KNearestClusterClassifier(n_clusters=1000).fit_clusters(unit(HAND_ANGLES),
                                                                     HAND_CLASSES)
    queries = unit(np.arange(0, 360, 7))
    all_five = KNearestClusterClassifier(n_clusters=5).fit_clusters(unit(HAND_ANGLES),
                                                                    HAND_CLASSES)
    np.testing.assert_array_equal(capped.predict(queries), all_five.predict(queries))
    assert capped.predict(QUERY)[0] == "B"


def test_single_class_retrieval_wins_with_several_clusters():
    # At 135 degrees the two nearest clusters are A's 120 and 150: no other class retrieved.
    clf = KNearestClusterClassifier(n_clusters=2).fit_clusters(unit(HAND_ANGLES), HAND_CLASSES)
    assert clf.predict(unit([135]))[0] == "A"


def test_centroids_are_renormalised_and_kept():
    clf = KNearestClusterClassifier().fit_clusters(3 * unit(HAND_ANGLES), HAND_CLASSES)
    np.testing.assert_allclose(clf.centroids_, unit(HAND_ANGLES), atol=1e-6)
    np.testing.assert_array_equal(clf.cluster_class_, HAND_CLASSES)
    # Scaled centroids must not change the answer: Eq. 10 uses unit mu.
    assert clf.set_params(n_clusters=3).predict(QUERY)[0] == "B"


# --- brute force on random data ------------------------------------------------------------

def brute_eq10(centroids, cluster_class, queries, n) -> np.ndarray:
    """Eq. 10 query by query, in float64, straight from the formula (no faiss)."""
    mu = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    out = []
    for q in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        sims = mu @ q
        top = np.argsort(-sims)[:n]
        best, best_score = None, -np.inf
        for c in sorted(set(cluster_class[top])):
            mine = cluster_class[top] == c
            ratio = (np.exp(sims[top][mine].min()) / np.exp(sims[top][~mine]).sum()
                     if (~mine).any() else np.inf)
            if best is None or ratio > best_score:
                best, best_score = c, ratio
        out.append(best)
    return np.array(out)


def random_clusters(seed: int = 0, n_clusters: int = 40, n_classes: int = 5, dim: int = 6):
    rng = np.random.default_rng(seed)
    centroids = rng.standard_normal((n_clusters, dim))
    cluster_class = rng.integers(0, n_classes, n_clusters)
    queries = centroids[rng.integers(0, n_clusters, 400)] + 0.8 * rng.standard_normal((400, dim))
    return centroids, cluster_class, queries


@pytest.mark.parametrize("n", [1, 2, 3, 7, 15, 40])
def test_eq10_matches_brute_force(n):
    centroids, cluster_class, queries = random_clusters()
    clf = KNearestClusterClassifier(n_clusters=n).fit_clusters(centroids, cluster_class)
    predicted = clf.predict(queries)
    np.testing.assert_array_equal(predicted, brute_eq10(centroids, cluster_class, queries, n))
    if n >= 3:
        # Not the nearest-cluster rule in disguise.
        nearest = brute_eq10(centroids, cluster_class, queries, 1)
        assert np.count_nonzero(predicted != nearest) > 10


def brute_majority(train, labels, queries, k) -> np.ndarray:
    """Vote of the k nearest by cosine; ties to the larger summed similarity, then the
    smaller label."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    out = []
    for q in queries / np.linalg.norm(queries, axis=1, keepdims=True):
        sims = train @ q
        top = np.argsort(-sims)[:k]
        tally = {c: (np.sum(labels[top] == c), sims[top][labels[top] == c].sum())
                 for c in set(labels[top])}
        out.append(min(tally, key=lambda c: (-tally[c][0], -tally[c][1], c)))
    return np.array(out)


@pytest.mark.parametrize("k", [1, 2, 4, 6, 9])
def test_instance_knn_matches_brute_force(k):
    rng = np.random.default_rng(1)
    train = rng.standard_normal((300, 5))
    labels = rng.integers(0, 4, 300)
    queries = rng.standard_normal((300, 5))
    predicted = InstanceKNN(n_neighbors=k).fit(train, labels).predict(queries)
    np.testing.assert_array_equal(predicted, brute_majority(train, labels, queries, k))


def test_select_n_clusters_matches_a_loop_over_fits():
    centroids, cluster_class, queries = random_clusters(seed=2)
    truth = brute_eq10(centroids, cluster_class, queries, 1)
    # Flip a third of the labels so the score depends on N.
    flip = np.random.default_rng(3).random(len(truth)) < 0.3
    truth = np.where(flip, (truth + 1) % 5, truth)
    clf = KNearestClusterClassifier().fit_clusters(centroids, cluster_class)
    grid = [*range(1, 40, 3), 39, 45, 200]
    best, scores = select_n_clusters(clf, queries, truth, grid)

    expected = {}
    for n in grid:
        effective = min(n, len(centroids))
        predicted = KNearestClusterClassifier(n_clusters=effective).fit_clusters(
            centroids, cluster_class).predict(queries)
        expected[effective] = balanced_accuracy_score(truth, predicted)
    assert scores == pytest.approx(expected)
    assert sorted(scores) == [*range(1, 40, 3), 39, 40]
    top = max(expected.values())
    assert best == min(n for n, s in expected.items() if s == top)
    assert len(set(expected.values())) > 3
    assert clf.n_clusters == 20, "selection must not change the classifier"


def test_select_works_for_instance_knn_and_breaks_ties_to_the_smallest():
    rng = np.random.default_rng(4)
    train = rng.standard_normal((200, 4))
    labels = (train[:, 0] > 0).astype(int)
    clf = InstanceKNN().fit(train, labels)
    # Every depth classifies these far-out points right: all tie, the smallest wins.
    queries = np.array([[5.0, 0, 0, 0], [-5.0, 0, 0, 0]])
    best, scores = select_n_clusters(clf, queries, np.array([1, 0]), grid=[7, 3, 5])
    assert best == 3 and scores == {3: 1.0, 5: 1.0, 7: 1.0}


# --- fitting with the clustering -----------------------------------------------------------

def test_fit_on_separated_clusters_is_perfect():
    rng = np.random.default_rng(5)
    dim, per_mode = 16, 60
    # Orthogonal modes: a query's far clusters are all at similarity ~0, so with N beyond the
    # near ones no class's least similar cluster stands out and the near cluster decides.
    modes = np.eye(dim)[:6]
    mode_class = np.array([0, 0, 1, 1, 2, 2])
    sizes = np.array([1, 3, 2, 1, 1, 4]) * per_mode       # imbalanced classes

    def sample(counts):
        which = np.repeat(np.arange(6), counts)
        x = modes[which] * 10 + 0.5 * rng.standard_normal((len(which), dim))
        return x, mode_class[which]

    x, y = sample(sizes)
    names = np.array(["ann", "bob", "cy"])          # any label type, not only class ids
    clf = KNearestClusterClassifier(cluster_size=60, n_clusters=5).fit(x, names[y])
    # Classes of 240, 180 and 300 samples: floor(L_c / l) = 4, 3 and 5 clusters.
    assert list(clf.classes_) == list(names)
    np.testing.assert_array_equal(clf.cluster_class_, np.repeat(names, [4, 3, 5]))
    np.testing.assert_allclose(np.linalg.norm(clf.centroids_, axis=1), 1, atol=1e-5)
    queries, truth = sample(np.full(6, 30))
    assert clf.score(queries, names[truth]) == 1.0


def test_bad_inputs():
    clf = KNearestClusterClassifier(n_clusters=0).fit_clusters(unit(HAND_ANGLES), HAND_CLASSES)
    with pytest.raises(ValueError, match="n_clusters must be >= 1"):
        clf.predict(QUERY)
    with pytest.raises(ValueError, match="fitted on 2-d features, got 3-d"):
        clf.set_params(n_clusters=2).predict(np.ones((1, 3)))
    with pytest.raises(ValueError, match="one label per vector"):
        InstanceKNN().fit(np.ones((3, 2)), [0, 1])
