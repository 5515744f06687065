"""Batch samplers with a resumable position, so a restarted run sees the same batches.

Every sampler yields row indices into the training rows (``next_batch``) and has a
``state_dict`` of plain ints (checkpoints are read with ``weights_only=True``); a sampler
restored from it mid-run yields exactly the batches the original would have. Randomness comes
from generators keyed by (seed, position), never from a generator carried along, so the
position alone is the state. The trainer picks a sampler by name through ``build``; further
samplers plug in with ``SAMPLERS.register``.

CLMLE's ``ClusterSampler`` also carries the clustering and a loss cache, which its state holds
as well; both feed its choices, so the position alone no longer determines the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import torch

from facerepro.registries import Registry
from facerepro.spherical_kmeans import ClusterSet


class ShuffleSampler:
    """Epochs of a seeded random permutation, cut into fixed-size batches (last one dropped)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < batch_size:
            raise ValueError(f"{n} training images for a batch of {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.position = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)

    def next_batch(self) -> np.ndarray:
        if self.position + self.batch_size > self.n:
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._permutation()
        batch = self._order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation()


class Sampler(Protocol):
    """What the trainer needs from a sampler.

    Two optional members let a sampler follow the training (CLMLE's cluster batches): a
    ``targets`` array, which the trainer trains on instead of the labels it gave (the sampler
    may update it in place), and ``refresh(features, step, loss)``, called before a fresh run's
    first step (step 0) and after every step with a callable that embeds the training rows
    with the current net and the loss module of that step. A sampler with ``refresh`` is drawn
    from in step, never ahead, and checkpointed from its own state.
    """

    def next_batch(self) -> np.ndarray: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


# Each entry is called as ``factory(labels, batch_size, seed, **options) -> Sampler``.
SAMPLERS: Registry[Callable[..., Sampler]] = Registry("sampler")


def _rng(seed: int, *key: int) -> np.random.Generator:
    # SeedSequence ignores trailing zeros ([s, 1] and [s, 1, 0] are one stream); the nonzero
    # terminator keeps keys of different lengths on different streams.
    return np.random.default_rng([seed, *key, 1])


def _group_rows(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ordered by identity, and each identity's start and count in that order."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    return order, np.cumsum(counts) - counts, counts


class IdentitySampler:
    """FaceNet batches: P identities x K images, each identity's K rows consecutive.

    Only identities with at least two images are eligible, because a triplet needs a positive.
    Identities are visited in epochs of a seeded permutation; an epoch is floor(E / P) batches
    of the E eligible identities, so each appears at most once per epoch and the E mod P left
    over (different ones each epoch) sit that epoch out, as ShuffleSampler drops its remainder.
    An identity with at least K images gives K distinct ones; one with fewer gives all of its
    images plus draws with replacement from them up to K, so every batch has P * K rows.
    """

    def __init__(self, labels: np.ndarray, identities_per_batch: int, images_per_identity: int,
                 seed: int) -> None:
        if images_per_identity < 2:
            raise ValueError(f"images_per_identity is {images_per_identity}; triplets need at "
                             f"least 2 images of an identity in the batch")
        if identities_per_batch < 2:
            raise ValueError(f"identities_per_batch is {identities_per_batch}; triplets need "
                             f"negatives from at least 2 identities")
        order, starts, counts = _group_rows(np.asarray(labels))
        self._groups = [order[s:s + c] for s, c in zip(starts, counts, strict=True) if c >= 2]
        if len(self._groups) < identities_per_batch:
            raise ValueError(f"{len(self._groups)} identities have at least 2 images, fewer than "
                             f"the {identities_per_batch} identities per batch")
        self.identities_per_batch = identities_per_batch
        self.images_per_identity = images_per_identity
        self.batch_size = identities_per_batch * images_per_identity
        self.seed = seed
        self.epoch, self.position = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return _rng(self.seed, self.epoch).permutation(len(self._groups))

    def next_batch(self) -> np.ndarray:
        if self.position + self.identities_per_batch > len(self._groups):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._permutation()
        rng = _rng(self.seed, self.epoch, self.position)
        picked = self._order[self.position:self.position + self.identities_per_batch]
        self.position += self.identities_per_batch
        return np.concatenate([self._draw(self._groups[i], rng) for i in picked])

    def _draw(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k = self.images_per_identity
        if len(rows) >= k:
            return rng.choice(rows, k, replace=False)
        return np.concatenate([rows, rng.choice(rows, k - len(rows))])

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation()


@SAMPLERS.register("pair")
class PairSampler:
    """DeepID2+ / Compact int32 pairs: ``rows[0::2]`` and ``rows[1::2]`` are the two sides.

    The first ``round(positive_fraction * batch_size / 2)`` pairs are same-identity: an identity
    drawn uniformly among those with at least two images, then two distinct images of it. The
    rest are different-identity: two distinct identities drawn uniformly among all of them,
    then one image of each. Pairs are drawn independently (with replacement) batch after batch.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int,
                 positive_fraction: float = 0.5) -> None:
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"batch_size {batch_size} must be even and positive: a pair "
                             f"batch holds batch_size / 2 pairs")
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction {positive_fraction} is not in [0, 1]")
        pairs = batch_size // 2
        self.same_pairs = round(positive_fraction * pairs)
        self.different_pairs = pairs - self.same_pairs
        self._order, self._starts, self._counts = _group_rows(np.asarray(labels))
        self._eligible = np.flatnonzero(self._counts >= 2)
        if self.same_pairs and not len(self._eligible):
            raise ValueError("no identity has 2 images, so there are no same-identity pairs; "
                             "set positive_fraction to 0 or use other training data")
        if self.different_pairs and len(self._counts) < 2:
            raise ValueError(f"{len(self._counts)} identity in the training data: "
                             f"different-identity pairs need at least 2")
        self.batch_size, self.seed = batch_size, seed
        self.batches = 0

    def _image(self, identity: np.ndarray, index: np.ndarray) -> np.ndarray:
        return self._order[self._starts[identity] + index]

    def next_batch(self) -> np.ndarray:
        rng = _rng(self.seed, self.batches)
        self.batches += 1
        same = self._eligible[rng.integers(len(self._eligible), size=self.same_pairs)]
        first = rng.integers(0, self._counts[same])
        # A second index drawn from count - 1 and shifted past the first is distinct from it.
        second = rng.integers(0, self._counts[same] - 1)
        second += second >= first
        n = len(self._counts)
        a = rng.integers(n, size=self.different_pairs)
        b = rng.integers(n - 1, size=self.different_pairs)
        b += b >= a
        rows = np.empty(self.batch_size, np.int64)
        rows[0::2] = np.concatenate([self._image(same, first),
                                     self._image(a, rng.integers(0, self._counts[a]))])
        rows[1::2] = np.concatenate([self._image(same, second),
                                     self._image(b, rng.integers(0, self._counts[b]))])
        return rows

    def state_dict(self) -> dict:
        return {"batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.batches = int(state["batches"])


def pair_labels(rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For a pair batch, True where the pair ``(rows[2i], rows[2i + 1])`` is one identity."""
    rows, labels = np.asarray(rows), np.asarray(labels)
    if len(rows) % 2:
        raise ValueError(f"{len(rows)} rows do not form pairs")
    return labels[rows[0::2]] == labels[rows[1::2]]


QUERIES = ("hardest", "uniform")


class ClusterSampler:
    """CLMLE batches: a query cluster and its M - 1 nearest clusters, s rows of each.

    Huang, Li, Loy, Tang, TPAMI 2019, Sec. 3.3. A batch is built as:

    - query: a class drawn uniformly among the classes (majority and minority alike), then
      its cluster with the highest cached loss (``"hardest"``; a cluster not seen since the
      clustering was set counts as +inf, so each is visited before any is repeated; ties go
      to a seeded random choice). ``"uniform"`` takes a uniformly random cluster of the class
      instead: our reading of Table 7's "uniform cluster sampling" ablation, against which
      the paper says the query cluster is "non-uniform in class - we pick the one with the
      highest observed loss".
    - neighbours: the M - 1 clusters with the largest centroid inner product with the query.
      The paper makes sure they come from both the same and other classes, so the nearest
      cluster of another class and the nearest other cluster of the query's class (when it
      has one) are taken first, in that order, then the nearest of the rest.
    - rows: ``samples_per_cluster`` rows of each cluster, without replacement when it has
      that many, else all of its rows plus draws with replacement. Cluster j of the batch
      (the query first) occupies rows ``[j s, (j + 1) s)``.

    The sampler starts without clusters: ``set_clusters`` installs them (and replaces them at
    each re-clustering, which also empties the loss cache), ``record_losses`` fills the cache
    from ``CLMLELoss.cluster_losses`` after each step. The cache holds each cluster's latest
    batch mean. ``state_dict`` includes the clustering and the cache, so a restored sampler
    continues with identical batches.
    """

    def __init__(self, labels: np.ndarray, clusters_per_batch: int, samples_per_cluster: int,
                 seed: int, query: str = "hardest") -> None:
        if clusters_per_batch < 2:
            raise ValueError(f"clusters_per_batch is {clusters_per_batch}; a batch needs the "
                             f"query cluster and at least one neighbour")
        if samples_per_cluster < 1:
            raise ValueError(f"samples_per_cluster is {samples_per_cluster}; need at least 1")
        if query not in QUERIES:
            raise ValueError(f"query is {query!r}; allowed: {', '.join(QUERIES)}")
        self.labels = np.asarray(labels)
        self.clusters_per_batch, self.samples_per_cluster = clusters_per_batch, samples_per_cluster
        self.batch_size = clusters_per_batch * samples_per_cluster
        self.seed, self.query = seed, query
        self.batches = 0
        self._clusters: ClusterSet | None = None

    def set_clusters(self, clusters: ClusterSet) -> None:
        """Install a clustering of the training rows; the loss cache starts over."""
        # Copies: the caller may reuse its arrays, and state_dict shares these.
        assignment = np.array(clusters.assignment, dtype=np.int64)
        cluster_class = np.array(clusters.cluster_class, dtype=np.int64)
        centroids = np.array(clusters.centroids, dtype=np.float32)
        k = len(cluster_class)
        if assignment.shape != self.labels.shape or centroids.shape[:1] != (k,):
            raise ValueError(f"the clustering covers {assignment.shape} rows and "
                             f"{centroids.shape[:1]} centroids for {k} clusters; the sampler "
                             f"has {len(self.labels)} rows")
        if len(assignment) and (assignment.min() < 0 or assignment.max() >= k):
            raise ValueError(f"cluster ids must lie in [0, {k})")
        if (np.bincount(assignment, minlength=k) == 0).any():
            raise ValueError("every cluster needs at least one row to draw from")
        if (cluster_class[assignment] != self.labels).any():
            raise ValueError("a row's cluster belongs to another class than the row: the "
                             "clustering was made for other training rows")
        if k < self.clusters_per_batch:
            raise ValueError(f"{k} clusters, fewer than the {self.clusters_per_batch} clusters "
                             f"per batch")
        # Never written after this, so state_dict can hand them out without copying.
        self._clusters = ClusterSet(assignment, cluster_class, centroids)
        self._members, self._starts, self._counts = _group_rows(assignment)
        self._classes = [np.flatnonzero(cluster_class == c) for c in np.unique(cluster_class)]
        self._losses = np.full(k, np.inf)

    def _installed(self) -> ClusterSet:
        if self._clusters is None:
            raise RuntimeError("the cluster sampler has no clusters yet: call set_clusters "
                               "with the clustering of the training features first")
        return self._clusters

    def record_losses(self, cluster_losses: Mapping[int, float]) -> None:
        """Cache the latest mean loss of each cluster of a batch (``CLMLELoss.cluster_losses``)."""
        self._installed()
        for cluster, loss in cluster_losses.items():
            # A NaN would never compare as the highest and leave a class without a query.
            if math.isnan(loss):
                raise ValueError(f"the loss of cluster {cluster} is NaN: training diverged")
            self._losses[cluster] = loss

    def cluster_of(self, rows: np.ndarray) -> np.ndarray:
        """The global cluster id of each training row."""
        return self._installed().assignment[np.asarray(rows)]

    def _query(self, rng: np.random.Generator) -> int:
        candidates = self._classes[rng.integers(len(self._classes))]
        if self.query == "hardest":
            losses = self._losses[candidates]
            candidates = candidates[losses == losses.max()]
        return int(candidates[rng.integers(len(candidates))])

    def _neighbours(self, query: int) -> list[int]:
        clusters = self._installed()
        similarity = clusters.centroids @ clusters.centroids[query]
        # Stable, so equal similarities go to the lower cluster id.
        order = np.argsort(-similarity, kind="stable")
        order = order[order != query]
        same = clusters.cluster_class[order] == clusters.cluster_class[query]
        first = [order[np.argmax(s)] for s in (~same, same) if s.any()]
        rest = order[~np.isin(order, first)]
        return [int(c) for c in [*first, *rest][:self.clusters_per_batch - 1]]

    def next_batch(self) -> np.ndarray:
        self._installed()
        rng = _rng(self.seed, self.batches)
        self.batches += 1
        query = self._query(rng)
        return np.concatenate([self._draw(c, rng) for c in [query, *self._neighbours(query)]])

    def _draw(self, cluster: int, rng: np.random.Generator) -> np.ndarray:
        rows = self._members[self._starts[cluster]:self._starts[cluster] + self._counts[cluster]]
        s = self.samples_per_cluster
        if len(rows) >= s:
            return rng.choice(rows, s, replace=False)
        return np.concatenate([rows, rng.choice(rows, s - len(rows))])

    def state_dict(self) -> dict:
        state: dict = {"batches": self.batches}
        if self._clusters is not None:
            state["clusters"] = {name: torch.from_numpy(getattr(self._clusters, name))
                                 for name in ("assignment", "cluster_class", "centroids")}
            state["losses"] = torch.from_numpy(self._losses.copy())
        return state

    def load_state_dict(self, state: dict) -> None:
        self.batches = int(state["batches"])
        if "clusters" not in state:
            self._clusters = None
            return
        self.set_clusters(ClusterSet(**{name: tensor.numpy()
                                        for name, tensor in state["clusters"].items()}))
        self._losses = state["losses"].numpy().astype(np.float64)


def build(name: str, labels: np.ndarray, batch_size: int, seed: int, **options: Any) -> Sampler:
    """The sampler ``name`` over the training rows with these ``labels``."""
    return SAMPLERS[name](np.asarray(labels), batch_size, seed, **options)


@SAMPLERS.register("shuffle")
def _shuffle(labels: np.ndarray, batch_size: int, seed: int) -> ShuffleSampler:
    return ShuffleSampler(len(labels), batch_size, seed)


@SAMPLERS.register("identity")
def _identity(labels: np.ndarray, batch_size: int, seed: int, images_per_identity: int,
              identities_per_batch: int | None = None) -> IdentitySampler:
    if identities_per_batch is None:
        identities_per_batch = batch_size // images_per_identity
    # A silently smaller batch would misreport the run's batch size.
    if identities_per_batch * images_per_identity != batch_size:
        raise ValueError(f"batch_size {batch_size} must equal identities_per_batch x "
                         f"images_per_identity ({identities_per_batch} x {images_per_identity} "
                         f"= {identities_per_batch * images_per_identity})")
    return IdentitySampler(labels, identities_per_batch, images_per_identity, seed)


@SAMPLERS.register("cluster")
def _cluster_batches(labels: np.ndarray, batch_size: int, seed: int, size: int, every: int,
                     **options: Any) -> Sampler:
    # Imported here: CLMLE's batches are built from this module's cluster samplers.
    from facerepro.training.clustering import ClusterBatches

    return ClusterBatches(labels, batch_size, seed, size, every, **options)


def cluster_sampler(labels: np.ndarray, batch_size: int, seed: int, clusters_per_batch: int = 12,
                    samples_per_cluster: int = 20, query: str = "hardest") -> ClusterSampler:
    """One task's cluster sampler; the ``cluster`` sampler of a run is
    :class:`~facerepro.training.clustering.ClusterBatches`, one of these per task."""
    if clusters_per_batch * samples_per_cluster != batch_size:
        raise ValueError(f"batch_size {batch_size} must equal clusters_per_batch x "
                         f"samples_per_cluster ({clusters_per_batch} x {samples_per_cluster} "
                         f"= {clusters_per_batch * samples_per_cluster})")
    return ClusterSampler(labels, clusters_per_batch, samples_per_cluster, seed, query)


@SAMPLERS.register("attribute_balanced")
class AttributeBalancedSampler:
    """Re-sampling baselines of CLMLE Table 5: batches balanced for one attribute at a time.

    Batch b serves attribute ``b mod A``: half its rows are faces with the attribute, half
    without, drawn uniformly with replacement. ``over``: from all of each class, so the minority
    class is repeated (over-sampling); ``down``: the majority class is cut once, by a seeded
    draw, to the minority's size, so its other faces are never seen (down-sampling). An
    attribute that no training face has (or every face has) gets a uniform batch.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int,
                 mode: str = "over") -> None:
        labels = np.asarray(labels, dtype=bool)
        if labels.ndim != 2:
            raise ValueError("attribute_balanced needs (n, A) attribute labels (labels: "
                             "attributes)")
        if mode not in ("over", "down"):
            raise ValueError(f"mode is {mode!r}; allowed: over, down")
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"batch_size {batch_size} must be even: half of it per class")
        self.n, self.batch_size, self.seed = len(labels), batch_size, seed
        self._pools: list[tuple[np.ndarray, np.ndarray] | None] = []
        for a in range(labels.shape[1]):
            yes, no = np.flatnonzero(labels[:, a]), np.flatnonzero(~labels[:, a])
            if not len(yes) or not len(no):
                self._pools.append(None)
                continue
            if mode == "down":
                size = min(len(yes), len(no))
                rng = _rng(seed, a)
                yes, no = (np.sort(rng.choice(p, size, replace=False)) for p in (yes, no))
            self._pools.append((yes, no))
        self.batches = 0

    def next_batch(self) -> np.ndarray:
        rng = _rng(self.seed, self.batches)
        pools = self._pools[self.batches % len(self._pools)]
        self.batches += 1
        if pools is None:
            return rng.integers(self.n, size=self.batch_size)
        half = self.batch_size // 2
        return np.concatenate([rng.choice(pool, half) for pool in pools])

    def state_dict(self) -> dict:
        return {"batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.batches = int(state["batches"])
