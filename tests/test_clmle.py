"""CLMLE: equal-size spherical k-means, the Eq. 9 loss, and the cluster batch sampler."""

import io
import math

import numpy as np
import pytest
import torch

from facerepro.losses.clmle import CLMLELoss, MultiTaskCLMLELoss, batch_centroids
from facerepro.spherical_kmeans import (
    ClusterSet,
    _balanced_assign,
    cluster_per_class,
    equal_size_kmeans,
)
from facerepro.training import samplers
from facerepro.training.samplers import ClusterSampler

# ---------------------------------------------------------------------------- k-means


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("n", "size"), [(12, 4), (10, 3), (7, 3), (5, 10), (1, 1), (23, 5)])
def test_kmeans_has_n_over_size_clusters_of_nearly_equal_size(n, size):
    x = np.random.default_rng(n).normal(size=(n, 4))
    assignment, centroids = equal_size_kmeans(x, size, seed=0)
    k = max(1, n // size)
    assert assignment.dtype == np.int64 and assignment.shape == (n,)
    assert centroids.dtype == np.float32 and centroids.shape == (k, 4)
    sizes = np.bincount(assignment, minlength=k)
    assert len(sizes) == k and sizes.sum() == n
    assert sizes.max() - sizes.min() <= 1
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1, atol=1e-6)
    # The centroids are the normalised means of the returned clusters.
    means = np.stack([unit_rows(x)[assignment == j].mean(0) for j in range(k)])
    np.testing.assert_allclose(centroids, unit_rows(means), atol=1e-5)


def pair_greedy(sim: np.ndarray) -> np.ndarray:
    """The balanced assignment as specified: pairs in descending similarity, one by one."""
    n, k = sim.shape
    floor, ceil_slots = divmod(n, k)
    count, assignment = [0] * k, [-1] * n
    pairs = sorted(((sim[i, j], i, j) for i in range(n) for j in range(k)), reverse=True)
    for _, i, j in pairs:
        at_ceil = sum(c == floor + 1 for c in count)
        room = count[j] < floor or (count[j] == floor and at_ceil < ceil_slots)
        if assignment[i] < 0 and room:
            assignment[i], count[j] = j, count[j] + 1
    return np.array(assignment)


def test_balanced_assignment_is_the_pair_greedy():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 30))
        sim = rng.normal(size=(n, int(rng.integers(1, n + 1))))  # no ties
        np.testing.assert_array_equal(_balanced_assign(sim), pair_greedy(sim))


def test_balanced_assignment_by_hand():
    # 5 points, 2 clusters: sizes 3 and 2 in some order. Pairs in order: (p0, c0) .9,
    # (p1, c0) .8, (p2, c0) .7 -> c0 now holds 3 = ceil, the one ceil slot is used, so c1 may
    # only reach 2; (p3, c0) .6 refused; (p3, c1) .5, (p4, c1) .1 taken.
    sim = np.array([[.9, .1], [.8, .2], [.7, .3], [.6, .5], [0, .1]])
    np.testing.assert_array_equal(_balanced_assign(sim), [0, 0, 0, 1, 1])


def test_kmeans_is_deterministic_for_a_seed():
    x = np.random.default_rng(1).normal(size=(40, 5))
    first, again = equal_size_kmeans(x, 7, seed=3), equal_size_kmeans(x, 7, seed=3)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


def planted(rng: np.random.Generator, clusters: int, per_cluster: int, d: int,
            noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    centres = unit_rows(rng.normal(size=(clusters, d)))
    truth = np.repeat(np.arange(clusters), per_cluster)
    x = centres[truth] + noise * rng.normal(size=(len(truth), d))
    order = rng.permutation(len(truth))
    return x[order], truth[order]


@pytest.mark.parametrize("seed", range(4))
def test_kmeans_recovers_planted_clusters(seed):
    x, truth = planted(np.random.default_rng(10 + seed), clusters=4, per_cluster=15, d=16)
    # Positive scaling of a row must not matter: the sphere only sees directions.
    x = x * np.random.default_rng(seed).uniform(0.5, 3, size=(len(x), 1))
    assignment, _ = equal_size_kmeans(x, 15, seed=seed)
    # Agreement up to relabelling: each planted cluster maps to one distinct found cluster.
    mapping = {t: set(assignment[truth == t]) for t in range(4)}
    assert all(len(found) == 1 for found in mapping.values())
    assert len(set.union(*mapping.values())) == 4


def test_kmeans_rejects_zero_rows():
    x = np.ones((4, 3))
    x[2] = 0
    with pytest.raises(ValueError, match="zero or not finite"):
        equal_size_kmeans(x, 2, seed=0)


def test_cluster_per_class_ids_are_consecutive_per_sorted_class():
    rng = np.random.default_rng(2)
    labels = rng.permutation(np.repeat([7, 2, 5], [9, 4, 13]))
    features = rng.normal(size=(len(labels), 6))
    clusters = cluster_per_class(features, labels, size=4, seed=1)
    # floor(L_c / 4) clusters: class 2 -> 1, 5 -> 3, 7 -> 2, in sorted class order.
    np.testing.assert_array_equal(clusters.cluster_class, [2, 5, 5, 5, 7, 7])
    np.testing.assert_array_equal(clusters.cluster_class[clusters.assignment], labels)
    assert clusters.centroids.shape == (6, 6) and clusters.centroids.dtype == np.float32
    for c in (2, 5, 7):
        sizes = np.bincount(clusters.assignment[labels == c])
        sizes = sizes[sizes > 0]
        assert sizes.max() - sizes.min() <= 1


def test_cluster_per_class_does_not_depend_on_other_classes():
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1, 2], [10, 12, 8])
    features = rng.normal(size=(len(labels), 5))
    full = cluster_per_class(features, labels, size=3, seed=4)
    # Class 1 alone, and with class 0 given other data: same clusters (ids shift by offset).
    alone = cluster_per_class(features[labels == 1], labels[labels == 1], size=3, seed=4)
    changed = features.copy()
    changed[labels == 0] = rng.normal(size=(10, 5))
    other = cluster_per_class(changed, labels, size=3, seed=4)
    offset = 3  # class 0: 10 // 3 clusters first
    np.testing.assert_array_equal(full.assignment[labels == 1] - offset, alone.assignment)
    np.testing.assert_array_equal(full.centroids[offset:offset + 4], alone.centroids)
    np.testing.assert_array_equal(other.assignment[labels == 1], full.assignment[labels == 1])
    # The per-class seed comes from the class: the same rows as class 9 cluster differently.
    relabelled = cluster_per_class(features[labels == 1], np.full(12, 9), size=3, seed=4)
    assert not np.array_equal(relabelled.centroids, alone.centroids)


# ---------------------------------------------------------------------------- loss


def angles(degrees: list[float], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    t = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([t.cos(), t.sin()], 1).to(dtype)


# Clusters 10, 11 of class 0 and 20 of class 1, two samples each, interleaved in the batch.
HAND_TARGET = torch.tensor([[0, 10], [1, 20], [0, 11], [0, 10], [0, 11], [1, 20]])
HAND_ANGLES = [0.0, 90.0, 60.0, 0.0, 60.0, 90.0]


def hand_losses() -> tuple[float, float, float]:
    # Unit centroids: mu_10 = (1, 0), mu_11 = (1/2, sqrt3/2), mu_20 = (0, 1). Margins with
    # C = 2, sizes (3, 1): a1 = 0.6 (1 - cos pi) = 1.2, a2 = 0.8 (1 - cos(3 pi / 2)) = 0.8.
    # Cluster 10: between: 0 - 1 + 1.2 = .2; within: 1/2 - 1 + .8 = .3.
    # Cluster 11: between: sqrt3/2 - 1 + 1.2; within: 1/2 - 1 + .8 = .3.
    # Cluster 20: between: log(e^0 + e^{sqrt3/2}) - 1 + 1.2; within: no other cluster, 0.
    r = math.sqrt(3) / 2
    return 0.5, r + 0.5, math.log(1 + math.exp(r)) + 0.2


def test_loss_by_hand():
    l10, l11, l20 = hand_losses()
    plain = CLMLELoss(2, [3, 1], a1=0.6, a2=0.8, cost_sensitive=False)
    got = plain(angles(HAND_ANGLES), HAND_TARGET)
    assert got.item() == pytest.approx((l10 + l11 + l20) / 3, rel=1e-6)
    assert plain.cluster_losses == pytest.approx({10: l10, 11: l11, 20: l20}, rel=1e-6)
    # Cost-sensitive: class 0 has 4 of the 6 samples (weight 6/4), class 1 has 2 (weight 6/2);
    # Eq. 9's 1 / 6 of the weighted sum is the sum of the two class means (the paper's) ...
    weighted = CLMLELoss(2, [3, 1], a1=0.6, a2=0.8)
    got = weighted(angles(HAND_ANGLES), HAND_TARGET)
    assert got.item() == pytest.approx((l10 + l11) / 2 + l20, rel=1e-6)
    # ... and weights normalised by their sum give the mean of the two class means.
    normalised = CLMLELoss(2, [3, 1], a1=0.6, a2=0.8, normalise_weights=True)
    got = normalised(angles(HAND_ANGLES), HAND_TARGET)
    assert got.item() == pytest.approx(((l10 + l11) / 2 + l20) / 2, rel=1e-6)
    # Every cluster's two samples coincide, so the plain mean is already unit length.
    for centroids in ("mean", "unit"):
        got = CLMLELoss(2, [3, 1], a1=0.6, a2=0.8, cost_sensitive=False, centroids=centroids)
        assert got(angles(HAND_ANGLES), HAND_TARGET).item() == pytest.approx(
            (l10 + l11 + l20) / 3, rel=1e-6)


def test_batch_centroids_are_the_plain_or_the_normalised_mean():
    # Cluster 0: unit features at 0 and 90 degrees, mean (1/2, 1/2) of length sqrt2 / 2;
    # cluster 1: one feature at 180 degrees, its own mean.
    f = angles([0.0, 180.0, 90.0])
    member = torch.tensor([0, 1, 0])
    mean = batch_centroids(f, member, 2, "mean")
    unit = batch_centroids(f, member, 2, "unit")
    torch.testing.assert_close(mean, torch.tensor([[0.5, 0.5], [-1.0, 0.0]],
                                                  dtype=torch.float64))
    r = math.sqrt(2) / 2
    torch.testing.assert_close(unit, torch.tensor([[r, r], [-1.0, 0.0]], dtype=torch.float64))
    # In the loss: cluster 0 of class 0, cluster 1 of class 1, a1 = 0.5 (1 - cos pi) = 1,
    # no within term. Sample at 0 degrees: mean f.mu_0 = 1/2, f.mu_1 = -1 -> -1 - 1/2 + 1;
    # unit f.mu_0 = r. The sample at 90 degrees has the same f.mu_0 and f.mu_1 = 0.
    target = torch.tensor([[0, 0], [1, 1], [0, 0]])
    want = {"mean": [-1 - 0.5 + 1, 0.0, 0 - 0.5 + 1], "unit": [0.0, 0.0, 1 - r]}
    # the sample at 180 degrees: f.mu_1 = 1 and f.mu_0 = -1/2 (mean) or -r (unit): clamped
    for centroids, per_sample in want.items():
        loss = CLMLELoss(2, [2, 1], a1=0.5, cost_sensitive=False, centroids=centroids)
        value = loss(f, target).item()
        assert value == pytest.approx(sum(max(0.0, x) for x in per_sample) / 3, rel=1e-6)
    assert CLMLELoss(2, [2, 1], a1=0.5)(f, target).item() != pytest.approx(
        CLMLELoss(2, [2, 1], a1=0.5, centroids="unit")(f, target).item(), rel=1e-3)
    with pytest.raises(ValueError, match="centroids is 'median'"):
        CLMLELoss(2, [2, 1], centroids="median")


def reference_loss(f: np.ndarray, classes: list[int], clusters: list[int], a1: float,
                   a2: list[float], cost_sensitive: bool, centroids: str = "mean",
                   normalise_weights: bool = False) -> tuple[float, dict[int, float]]:
    """Eq. 9 with loops, straight from the formula."""
    f = [v / np.linalg.norm(v) for v in f]
    ids = sorted(set(clusters))
    mu, owner = {}, {}
    for k in ids:
        members = [f[i] for i in range(len(f)) if clusters[i] == k]
        mean = sum(members) / len(members)
        mu[k] = mean / np.linalg.norm(mean) if centroids == "unit" else mean
        owner[k] = classes[clusters.index(k)]
    per_sample = []
    for i, v in enumerate(f):
        m, c = clusters[i], classes[i]
        own = float(v @ mu[m])
        other = [float(v @ mu[k]) for k in ids if owner[k] != c]
        same = [float(v @ mu[k]) for k in ids if owner[k] == c and k != m]
        loss = 0.0
        if other:
            loss += max(0.0, -math.log(math.exp(own - a1) / sum(math.exp(s) for s in other)))
        if same:
            loss += max(0.0, -math.log(math.exp(own - a2[c]) / sum(math.exp(s) for s in same)))
        per_sample.append(loss)
    # the inverse of each class's share of the batch (1 without cost-sensitive learning)
    weights = [len(f) / classes.count(c) if cost_sensitive else 1.0 for c in classes]
    norm = sum(weights) if normalise_weights else len(f)
    total = sum(w * x for w, x in zip(weights, per_sample, strict=True)) / norm
    by_cluster = {k: float(np.mean([x for x, j in zip(per_sample, clusters, strict=True)
                                    if j == k])) for k in ids}
    return total, by_cluster


# 3 classes, 5 clusters of 1-3 samples; class 2 has one cluster (its within term is empty).
RANDOM_CLASSES = [0, 1, 0, 2, 1, 0, 1, 2, 0, 0, 1]
RANDOM_CLUSTERS = [3, 7, 4, 9, 7, 3, 8, 9, 4, 3, 8]
SIZES = [50, 30, 20]


def random_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Features near a few directions, so that some terms are active and some are clamped.
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(5, 3, generator=g, dtype=torch.float64)
    index = torch.tensor([sorted(set(RANDOM_CLUSTERS)).index(k) for k in RANDOM_CLUSTERS])
    x = base[index] + 0.6 * torch.randn(len(index), 3, generator=g, dtype=torch.float64)
    return x, torch.tensor([RANDOM_CLASSES, RANDOM_CLUSTERS]).T


@pytest.mark.parametrize(("cost_sensitive", "normalise_weights"),
                         [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("centroids", ["mean", "unit"])
@pytest.mark.parametrize(("seed", "a1"), [(0, 0.7), (1, 0.1), (2, 0.7)])
def test_loss_matches_a_loop_implementation(seed, a1, centroids, cost_sensitive,
                                            normalise_weights):
    # With a1 = 0.1, batch 1 has a sample whose between term is clamped at 0; in every batch
    # some within terms are.
    x, target = random_batch(seed)
    loss = CLMLELoss(3, SIZES, a1=a1, a2=0.9, cost_sensitive=cost_sensitive,
                     centroids=centroids, normalise_weights=normalise_weights)
    a1 *= 1 - math.cos(2 * math.pi / 3)
    a2 = [0.9 * (1 - math.cos(2 * math.pi * s / 100)) for s in SIZES]
    want, by_cluster = reference_loss(x.numpy(), RANDOM_CLASSES, RANDOM_CLUSTERS, a1, a2,
                                      cost_sensitive, centroids, normalise_weights)
    assert loss(x, target).item() == pytest.approx(want, rel=1e-5)
    assert loss.cluster_losses == pytest.approx(by_cluster, rel=1e-5)
    assert want > 0


def test_cost_sensitive_weighting_changes_the_value():
    x, target = random_batch(0)
    plain = CLMLELoss(3, SIZES, cost_sensitive=False)(x, target).item()
    weighted = CLMLELoss(3, SIZES, cost_sensitive=True)(x, target).item()
    assert plain != pytest.approx(weighted, rel=1e-3)


def test_a_satisfied_margin_costs_nothing():
    # Two classes, one cluster each, a1 = 0.6 (1 - cos pi) = 1.2: the between term is
    # cos(gap) - 1 + 1.2, 0.2 at 90 degrees and -0.3 -> 0 at 120 degrees.
    loss = CLMLELoss(2, [1, 1], a1=0.6, cost_sensitive=False)
    target = torch.tensor([[0, 1], [1, 2]])
    assert loss(angles([0.0, 90.0]), target).item() == pytest.approx(0.2)
    x = angles([0.0, 120.0]).requires_grad_()
    value = loss(x, target)
    value.backward()
    assert value.item() == 0 and torch.equal(x.grad, torch.zeros_like(x))


def test_empty_sums_contribute_zero():
    loss = CLMLELoss(2, [3, 1], a1=0.6, a2=0.8, cost_sensitive=False)
    # One class, two clusters 60 degrees apart: no between term; within = 1/2 - 1 + 0.8.
    x = angles([0.0, 60.0, 0.0, 60.0]).requires_grad_()
    target = torch.tensor([[0, 1], [0, 2], [0, 1], [0, 2]])
    assert loss(x, target).item() == pytest.approx(0.3, rel=1e-6)
    # One cluster: both sums are empty; the loss is 0 with a finite (zero) gradient.
    x = angles([0.0, 40.0, 80.0]).requires_grad_()
    value = loss(x, torch.tensor([[1, 5], [1, 5], [1, 5]]))
    value.backward()
    assert value.item() == 0
    assert torch.equal(x.grad, torch.zeros_like(x))
    # Two classes with one cluster each: only the between term, finite gradient.
    x = angles([0.0, 50.0, 0.0, 50.0]).requires_grad_()
    value = loss(x, torch.tensor([[0, 1], [1, 2], [0, 1], [1, 2]]))
    value.backward()
    assert value.item() == pytest.approx(math.cos(math.radians(50)) - 1 + 1.2, rel=1e-6)
    assert torch.isfinite(x.grad).all()


def test_margins_are_fractions_of_the_bounds():
    loss = CLMLELoss(4, np.array([1, 1, 2, 4]), a1=0.5, a2=0.25)
    # a1: 0.5 (1 - cos(pi / 2)) = 0.5; a2: 0.25 (1 - cos(2 pi L_c / 8)), L_c / 8 = 1/8, 1/8,
    # 1/4, 1/2 -> 0.25 (1 - sqrt2/2), same, 0.25, 0.5.
    assert loss.margin_between.item() == pytest.approx(0.5)
    low = 0.25 * (1 - math.sqrt(2) / 2)
    np.testing.assert_allclose(loss.margin_within.numpy(), [low, low, 0.25, 0.5], rtol=1e-6)
    assert {"margin_between", "margin_within"} <= set(loss.state_dict())


def test_loss_gradcheck():
    x, target = random_batch(1)
    loss = CLMLELoss(3, SIZES, a1=0.7, a2=0.9)
    assert loss(x, target).item() > 0
    assert torch.autograd.gradcheck(lambda e: loss(e, target), (x.requires_grad_(),))


def test_loss_errors():
    for bad in ({"a1": -0.1}, {"a1": 1.5}, {"a2": 1.01}):
        with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
            CLMLELoss(2, [1, 1], **bad)
    with pytest.raises(ValueError, match="one size for each"):
        CLMLELoss(3, [1, 1])
    loss = CLMLELoss(2, [1, 1])
    with pytest.raises(ValueError, match="belongs to one class"):
        loss(angles([0.0, 10.0, 20.0]), torch.tensor([[0, 4], [1, 4], [1, 5]]))
    with pytest.raises(ValueError, match="class ids"):
        loss(angles([0.0, 10.0]), torch.tensor([[0, 4], [2, 5]]))


# ---------------------------------------------------------------------------- sampler

# 8 clusters of 4 classes, centroids on the unit circle at these angles (degrees). Pairwise
# angular gaps seen from each query used below are all distinct, so the neighbours are unique.
CLUSTER_CLASS = np.array([0, 0, 0, 1, 1, 2, 3, 3])
CLUSTER_ANGLES = [0.0, 100.0, 170.0, 20.0, 40.0, 65.0, 210.0, 330.0]
CLUSTER_ROWS = [5, 2, 4, 3, 6, 1, 3, 4]  # clusters 1 and 5 have fewer than s = 3 rows
ASSIGNMENT = np.random.default_rng(0).permutation(np.repeat(np.arange(8), CLUSTER_ROWS))
LABELS = CLUSTER_CLASS[ASSIGNMENT]
CLUSTERS = ClusterSet(ASSIGNMENT, CLUSTER_CLASS,
                      angles(CLUSTER_ANGLES, torch.float32).numpy())
# By hand, M = 4: [nearest other-class cluster, nearest same-class one, nearest of the rest].
# Query 0 (0 deg): gaps 3:20 7:30 4:40 5:65 1:100 6:150 2:170 -> 3, then 1, then 7.
# Query 4 (40): 3:20 5:25 0:40 1:60 7:70 2:130 6:170 -> 5, 3, then 0.
# Query 5 (65), class 2 has no other cluster: 4:25 1:35 3:45 0:65 -> 4, then 1, 3.
# Query 7 (330): 0:30 3:50 4:70 5:95 6:120 1:130 2:160 -> 0, 6, then 3.
NEIGHBOURS = {0: [3, 1, 7], 4: [5, 3, 0], 5: [4, 1, 3], 7: [0, 6, 3]}
LOSSES = {0: 5.0, 1: 1.0, 2: 2.0, 3: 0.5, 4: 3.0, 5: 1.0, 6: 0.1, 7: 0.2}  # hardest: 0 4 5 7


def cluster_sampler(query: str = "hardest", seed: int = 0) -> ClusterSampler:
    sampler = samplers.cluster_sampler(LABELS, 12, seed, clusters_per_batch=4,
                                       samples_per_cluster=3, query=query)
    sampler.set_clusters(CLUSTERS)
    return sampler


def blocks(sampler: ClusterSampler, rows: np.ndarray) -> np.ndarray:
    """The cluster of each block of s rows, checking that a block is one cluster."""
    ids = sampler.cluster_of(rows).reshape(4, 3)
    assert (ids == ids[:, :1]).all()
    return ids[:, 0]


def test_batches_are_m_clusters_of_s_rows():
    sampler = cluster_sampler()
    for _ in range(30):
        rows = sampler.next_batch()
        assert rows.shape == (12,) and rows.dtype == np.int64
        ids = blocks(sampler, rows)
        assert len(set(ids)) == 4
        classes = CLUSTER_CLASS[ids]
        assert (classes[1:] != classes[0]).any()  # another class is always present
        if (CLUSTER_CLASS == classes[0]).sum() > 1:
            assert (classes[1:] == classes[0]).any()
        for cluster, block in zip(ids, rows.reshape(4, 3), strict=True):
            own = set(np.flatnonzero(ASSIGNMENT == cluster))
            if CLUSTER_ROWS[cluster] >= 3:
                assert len(set(block)) == 3 and set(block) <= own
            else:
                assert set(block) == own  # all its rows, topped up with repeats
        sampler.record_losses(dict.fromkeys(ids.tolist(), 1.0))


def test_query_is_the_hardest_cluster_and_neighbours_are_the_nearest():
    sampler = cluster_sampler()
    sampler.record_losses(LOSSES)
    queries = []
    for _ in range(40):
        ids = blocks(sampler, sampler.next_batch())
        queries.append(ids[0])
        assert list(ids[1:]) == NEIGHBOURS[ids[0]]
    assert set(queries) == {0, 4, 5, 7}  # every class, each by its hardest cluster
    sampler.record_losses({2: 9.0})
    queries = {blocks(sampler, sampler.next_batch())[0] for _ in range(40)}
    assert queries == {2, 4, 5, 7}


def test_unseen_clusters_come_first():
    # Without recorded losses every cluster of a class ties at +inf; a seeded draw breaks
    # the tie, so each of class 0's clusters can be the query.
    sampler = cluster_sampler()
    queries = {blocks(sampler, sampler.next_batch())[0] for _ in range(60)}
    assert {0, 1, 2} <= queries
    # Once only cluster 2 of class 0 was never seen, it is class 0's query.
    sampler.record_losses({c: 1.0 for c in range(8) if c != 2})
    queries = {blocks(sampler, sampler.next_batch())[0] for _ in range(40)}
    assert queries & {0, 1, 2} == {2}


def test_uniform_query_ignores_the_losses():
    hardest, uniform = cluster_sampler("hardest"), cluster_sampler("uniform")
    hardest.record_losses(LOSSES)
    uniform.record_losses(LOSSES)
    picked = {blocks(uniform, uniform.next_batch())[0] for _ in range(80)}
    assert picked == set(range(8))
    assert {blocks(hardest, hardest.next_batch())[0] for _ in range(80)} == {0, 4, 5, 7}


def test_replacing_clusters_resets_the_cache():
    sampler = cluster_sampler()
    sampler.record_losses(LOSSES)
    sampler.set_clusters(CLUSTERS)
    assert torch.isinf(sampler.state_dict()["losses"]).all()


def test_restored_sampler_yields_the_same_batches():
    def step(sampler: ClusterSampler) -> np.ndarray:
        rows = sampler.next_batch()
        ids = sampler.cluster_of(rows)
        # A loss cache that depends on the batch, as a real one does.
        sampler.record_losses({int(k): float(rows[ids == k].sum() % 7) for k in set(ids)})
        return rows

    original = cluster_sampler(seed=3)
    for _ in range(5):
        step(original)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    restored = samplers.cluster_sampler(LABELS, 12, 3, clusters_per_batch=4,
                                        samples_per_cluster=3)
    restored.load_state_dict(state)
    for _ in range(8):
        np.testing.assert_array_equal(step(restored), step(original))


def test_sampler_errors():
    with pytest.raises(ValueError, match=r"batch_size 10 must equal .* \(4 x 3 = 12\)"):
        samplers.cluster_sampler(LABELS, 10, 0, clusters_per_batch=4, samples_per_cluster=3)
    sampler = samplers.cluster_sampler(LABELS, 12, 0, clusters_per_batch=4,
                                       samples_per_cluster=3)
    with pytest.raises(RuntimeError, match="set_clusters"):
        sampler.next_batch()
    # A state saved before the clusters were set restores a sampler without clusters.
    sampler.load_state_dict(sampler.state_dict())
    with pytest.raises(RuntimeError, match="set_clusters"):
        sampler.next_batch()
    wrong = ClusterSet(ASSIGNMENT, np.roll(CLUSTER_CLASS, 1), CLUSTERS.centroids)
    with pytest.raises(ValueError, match="another class"):
        sampler.set_clusters(wrong)
    too_big = samplers.cluster_sampler(LABELS, 27, 0, clusters_per_batch=9,
                                       samples_per_cluster=3)
    with pytest.raises(ValueError, match="8 clusters, fewer than the 9"):
        too_big.set_clusters(CLUSTERS)
    with pytest.raises(ValueError, match="NaN"):
        cluster_sampler().record_losses({3: float("nan")})
    with pytest.raises(ValueError, match="query"):
        samplers.cluster_sampler(LABELS, 12, 0, clusters_per_batch=4, samples_per_cluster=3,
                                 query="random")


def test_kmeans_sampler_and_loss_fit_together():
    # Clusters from features, a batch, the (class, cluster) target, the loss, the cache.
    x, classes = planted(np.random.default_rng(5), clusters=6, per_cluster=8, d=8, noise=0.3)
    labels = classes // 2  # 3 classes of 16 rows, 2 planted modes each
    clusters = cluster_per_class(x, labels, size=8, seed=0)
    sampler = samplers.cluster_sampler(labels, 16, 0, clusters_per_batch=4,
                                       samples_per_cluster=4)
    sampler.set_clusters(clusters)
    loss = CLMLELoss(3, np.bincount(labels))
    for _ in range(3):
        rows = sampler.next_batch()
        target = torch.from_numpy(np.stack([labels[rows], sampler.cluster_of(rows)], 1))
        value = loss(torch.from_numpy(x[rows]).float(), target)
        assert torch.isfinite(value)
        assert set(loss.cluster_losses) == set(sampler.cluster_of(rows).tolist())
        sampler.record_losses(loss.cluster_losses)
    assert np.isfinite(sampler.state_dict()["losses"].numpy()).sum() >= 4


def test_neighbour_choice_checked_against_brute_force():
    # Random centroids: every query's neighbours equal a brute-force reading of the rule.
    rng = np.random.default_rng(7)
    cluster_class = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 4])
    centroids = unit_rows(rng.normal(size=(10, 5))).astype(np.float32)
    assignment = np.repeat(np.arange(10), 3)
    sampler = ClusterSampler(cluster_class[assignment], 5, 2, seed=1, query="uniform")
    sampler.set_clusters(ClusterSet(assignment, cluster_class, centroids))
    sim = centroids.astype(np.float64) @ centroids.T.astype(np.float64)
    seen = set()
    for _ in range(60):
        ids = sampler.cluster_of(sampler.next_batch()).reshape(5, 2)[:, 0]
        q, neighbours = ids[0], list(ids[1:])
        seen.add(q)
        others = [k for k in range(10) if k != q]
        by_sim = sorted(others, key=lambda k: -sim[q, k])
        want = [next(k for k in by_sim if cluster_class[k] != cluster_class[q])]
        want += [k for k in by_sim if cluster_class[k] == cluster_class[q]][:1]
        want += [k for k in by_sim if k not in want][:4 - len(want)]
        assert neighbours == want
    assert seen == set(range(10))


def test_cluster_of_maps_rows_to_global_ids():
    sampler = cluster_sampler()
    rows = np.array([0, 5, 17, 27])
    np.testing.assert_array_equal(sampler.cluster_of(rows), ASSIGNMENT[rows])



def test_multi_task_loss_is_the_mean_of_per_task_losses():
    # Two attribute tasks: each reads its own 3 columns and its own (class, cluster).
    x, first = random_batch(2)
    y, _ = random_batch(3)
    first = torch.stack([first[:, 1] // 5, first[:, 1]], 1)  # clusters 3, 4 -> 0; 7, 8, 9 -> 1
    clusters = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1])
    second = torch.stack([(clusters != 1).long(), clusters], 1)
    attributes = np.array([[0, 1], [1, 1], [0, 0], [1, 0], [0, 1]])  # zeros: 3 and 2 of 5
    multi = MultiTaskCLMLELoss(attributes, a1=0.4, a2=0.9)
    got = multi(torch.cat([x, y], 1), torch.stack([first, second], 1))
    tasks = [CLMLELoss(2, [3, 2], 0.4, 0.9), CLMLELoss(2, [2, 3], 0.4, 0.9)]
    want = (tasks[0](x, first) + tasks[1](y, second)) / 2
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    for options in ({"centroids": "unit"}, {"normalise_weights": True}):
        other = MultiTaskCLMLELoss(attributes, a1=0.4, a2=0.9, **options)
        alone = [CLMLELoss(2, [3, 2], 0.4, 0.9, **options),
                 CLMLELoss(2, [2, 3], 0.4, 0.9, **options)]
        value = other(torch.cat([x, y], 1), torch.stack([first, second], 1)).item()
        assert value == pytest.approx(((alone[0](x, first) + alone[1](y, second)) / 2).item(),
                                      rel=1e-6)
        assert value != pytest.approx(got.item(), rel=1e-3)
    # the batched tasks' matrix products round differently from one task's, in the last bits
    assert multi.cluster_losses == [pytest.approx(t.cluster_losses, rel=1e-12) for t in tasks]
    # (n,) identities: one task over all classes, sizes counted in the labels.
    identities = MultiTaskCLMLELoss(np.array([0, 1, 1, 2, 2, 2, 2, 2, 0, 1]))
    plain = CLMLELoss(3, [2, 3, 5])
    assert identities(x, random_batch(2)[1]).item() == pytest.approx(
        plain(x, random_batch(2)[1]).item(), rel=1e-6)
    with pytest.raises(ValueError, match="0/1 attributes"):
        MultiTaskCLMLELoss(np.array([[0, 2], [1, 0]]))
