"""Equal-size spherical k-means, per class, as CLMLE clusters its training features.

Huang, Li, Loy, Tang, "Deep Imbalanced Learning for Face Recognition and Attribute
Prediction", TPAMI 2019, Sec. 3.1: each class c of L_c samples is split by spherical k-means
into K = floor(L_c / l) clusters of equal size l; similarity is the inner product of unit
vectors and a centroid is the normalised mean of its members. A class with fewer than l
samples is one cluster, and the L_c - K l left over are spread so that sizes are floor(L_c / K)
or ceil(L_c / K).

The algorithm is Lloyd's with a capacity-constrained assignment step:

- init: k-means++ on the sphere. The first centroid is a uniformly drawn point, each further
  one a point drawn with probability proportional to ``1 - max_j x . c_j``, which is half the
  squared chord distance to the nearest centroid, i.e. exactly k-means++'s D^2 weighting.
- assign: the greedy over (point, cluster) pairs in descending similarity, taking a pair when
  the point is still free and the cluster has room. Exactly ``n mod K`` clusters may hold
  ceil(n / K) points and the rest floor(n / K); a cluster has room while it is below floor, or
  at floor while fewer than ``n mod K`` clusters reached ceil. That capacity sums to n, so the
  greedy places every point. It is an approximation of the optimal balanced assignment (a
  min-cost flow), which would cost O(n^3).
- update: centroids are the normalised means of the new clusters.

Assign and update alternate until the assignment repeats or ``iterations`` assignments were
made. Everything is deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class ClusterSet:
    """The clusters of every class: ids of class c are consecutive, classes in sorted order."""

    assignment: np.ndarray     # (n,) global cluster id of each row
    cluster_class: np.ndarray  # (K_total,) class of each cluster
    centroids: np.ndarray      # (K_total, d) float32, unit norm


def _first_fill(picks: np.ndarray, room: np.ndarray) -> int:
    """Length of the shortest prefix of ``picks`` in which some cluster j occurs ``room[j]``
    times, or ``len(picks)`` when none does.

    Galloping then bisection over prefix lengths, each tested with a bincount: the cost
    follows the prefix, which is short in the late rounds where most clusters are full.
    """
    def fills(length: int) -> bool:
        return bool((np.bincount(picks[:length], minlength=len(room)) >= room).any())

    low, high = 0, max(1, int(room.min()))
    while high < len(picks) and not fills(high):
        low, high = high, 2 * high
    if high >= len(picks):
        if not fills(len(picks)):
            return len(picks)
        high = len(picks)
    while high - low > 1:  # fills(high) holds, fills(low) does not
        middle = (low + high) // 2
        low, high = (low, middle) if fills(middle) else (middle, high)
    return high


def _balanced_assign(sim: np.ndarray) -> np.ndarray:
    """The greedy of the module docstring on an (n, K) similarity matrix.

    Run in rounds instead of pair by pair: while the set of clusters with room does not
    change, the pair greedy simply takes the free points in descending order of their best
    open similarity, each into its best open cluster. A round does that up to the first
    point that fills a cluster; then the points whose choice just closed choose again and
    are merged back into the order. Ties go to the lower point index in the first round and
    after the points already waiting in later ones, so the result is a function of ``sim``.
    """
    n, k = sim.shape
    floor, ceil_slots = divmod(n, k)
    count = np.zeros(k, np.int64)
    is_open = np.ones(k, bool)
    assignment = np.full(n, -1, np.int64)
    choice = sim.argmax(1)
    best = sim[np.arange(n), choice]
    free = np.lexsort((np.arange(n), -best))
    while len(free):
        at_ceil = int((count == floor + 1).sum())
        full_at = floor if at_ceil == ceil_slots else floor + 1
        picks = choice[free]
        # Closed clusters get a room no prefix reaches; no free point picks them anyway.
        taken = _first_fill(picks, np.where(is_open, full_at - count, n + 1))
        assignment[free[:taken]] = picks[:taken]
        count += np.bincount(picks[:taken], minlength=k)
        free = free[taken:]
        at_ceil = int((count == floor + 1).sum())
        is_open &= ~((count == floor + 1) | ((count == floor) & (at_ceil == ceil_slots)))
        moved = ~is_open[choice[free]]
        if not moved.any():
            continue
        again, free = free[moved], free[~moved]
        choice[again] = np.where(is_open, sim[again], -np.inf).argmax(1)
        best[again] = sim[again, choice[again]]
        again = again[np.argsort(-best[again], kind="stable")]
        free = np.insert(free, np.searchsorted(-best[free], -best[again], side="right"), again)
    return assignment


def _normalised_means(x: np.ndarray, assignment: np.ndarray, previous: np.ndarray,
                      ) -> np.ndarray:
    order = np.argsort(assignment, kind="stable")
    # Every cluster holds at least floor(n / K) >= 1 points, so reduceat sees no empty group.
    starts = np.searchsorted(assignment[order], np.arange(len(previous)))
    sums = np.add.reduceat(x[order].astype(np.float64), starts)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    # Members that cancel out (antipodal points) leave no direction: keep the old centroid.
    return np.where(norms > 0, sums / np.where(norms > 0, norms, 1), previous).astype(np.float32)


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    chosen = [int(rng.integers(n))]
    closest = x @ x[chosen[0]]
    for _ in range(1, k):
        gap = np.clip(1.0 - closest.astype(np.float64), 0.0, None)
        # Rounding leaves a chosen point a tiny positive gap; it must not be drawn twice.
        gap[chosen] = 0.0
        cdf = np.cumsum(gap)
        if cdf[-1] > 0:
            # The first index whose cdf exceeds u has a positive gap; u rounding up to the
            # total would run past the end, so that case takes the last such index.
            pick = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
            if pick == n:
                pick = int(np.searchsorted(cdf, cdf[-1]))
        else:  # every remaining point coincides with a centroid
            pick = int(rng.choice(np.setdiff1d(np.arange(n), chosen)))
        chosen.append(pick)
        closest = np.maximum(closest, x @ x[pick])
    return x[chosen]


def equal_size_kmeans(x: np.ndarray, size: int, seed: int, iterations: int = 20,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the rows of ``x`` (n, d) into K = max(1, n // size) clusters of equal size.

    Rows are normalised first. Returns ``(assignment, centroids)``: (n,) int64 ids in [0, K)
    and (K, d) float32 unit-norm centroids, the normalised means of the returned clusters.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or not len(x):
        raise ValueError(f"x must be a non-empty (n, d) array, got shape {x.shape}")
    if size < 1:
        raise ValueError(f"cluster size {size} must be at least 1")
    if iterations < 1:
        raise ValueError(f"iterations {iterations} must be at least 1")
    norms = np.linalg.norm(x, axis=1)
    bad = np.flatnonzero(~(norms > 0) | ~np.isfinite(norms))
    if len(bad):
        raise ValueError(f"{len(bad)} rows (first: {bad[0]}) are zero or not finite, so they "
                         f"have no direction on the sphere")
    x = x / norms[:, None]
    k = max(1, len(x) // size)
    centroids = _kmeans_pp(x, k, np.random.default_rng(seed))
    assignment = None
    for _ in range(iterations):
        new = _balanced_assign(x @ centroids.T)
        if assignment is not None and np.array_equal(new, assignment):
            break
        assignment = new
        centroids = _normalised_means(x, assignment, centroids)
    return assignment, centroids


def _class_seed(seed: int, label: int) -> int:
    # The trailing 1 keeps [seed, 0] apart from [seed] (SeedSequence drops trailing zeros).
    return int(np.random.SeedSequence([seed, label, 1]).generate_state(1)[0])


def cluster_per_class(features: np.ndarray, labels: np.ndarray, size: int, seed: int,
                      ) -> ClusterSet:
    """``equal_size_kmeans`` on each class's rows, with a seed of (seed, class), so a class's
    clusters do not depend on the other classes."""
    features, labels = np.asarray(features), np.asarray(labels)
    if features.ndim != 2 or not len(features) or labels.shape != (len(features),):
        raise ValueError(f"need (n, d) features and (n,) labels, got {features.shape} and "
                         f"{labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or (labels < 0).any():
        raise ValueError("labels must be non-negative integers (class ids)")
    assignment = np.empty(len(labels), np.int64)
    classes, centroids = [], []
    offset = 0
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        local, mu = equal_size_kmeans(features[rows], size, _class_seed(seed, int(label)))
        assignment[rows] = offset + local
        classes.append(np.full(len(mu), label, np.int64))
        centroids.append(mu)
        offset += len(mu)
    return ClusterSet(assignment, np.concatenate(classes), np.concatenate(centroids))
