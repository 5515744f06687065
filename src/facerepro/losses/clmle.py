"""Cluster-based Large Margin Local Embedding (CLMLE) loss.

Huang, Li, Loy, Tang, "Deep Imbalanced Learning for Face Recognition and Attribute
Prediction", TPAMI 2019, Eq. 9. For a sample i of cluster m in the batch, with unit-length
features f_i and cluster centroids mu_k,

    L_i = [ -log( e^{f_i.mu_m - a1} / sum_{k: c(k) != c(m)} e^{f_i.mu_k} ) ]_+
        + [ -log( e^{f_i.mu_m - a2} / sum_{k != m, c(k) = c(m)} e^{f_i.mu_k} ) ]_+

      = [ logsumexp_{k: c(k) != c(m)} f_i.mu_k - f_i.mu_m + a1 ]_+
        + [ logsumexp_{k != m, c(k) = c(m)} f_i.mu_k - f_i.mu_m + a2 ]_+

where c(k) is the class of cluster k and the sums run over the clusters of the batch. A term
whose sum is empty (no cluster of another class, or no other cluster of the same class in the
batch) is 0. The centroids are those of the batch (Sec. 3.3: the paper's mu_m is the mean of
the 20 samples drawn from cluster m): ``centroids="mean"`` (the default) takes that plain mean
of the unit features, so ``||mu_m|| <= 1``; ``"unit"`` normalises it to unit length like the
k-means centroids the margins were derived for (the two agree in the collapsed limit of that
derivation, where every member of a cluster is the same point). Gradients flow through the
centroids into every member of the cluster. The spherical k-means centroids that form the
clusters and pick a batch's neighbours (:mod:`facerepro.spherical_kmeans`, the cluster
sampler) and Eq. 10's (:mod:`facerepro.evaluation.knc`) stay unit length either way.

Margins (Sec. 3.2, upper bounds of the grid search) are given as fractions of the bounds:

    0 <= a1 <= 1 - cos(2 pi / C)            (between classes; C classes)
    0 <= a2 <= 1 - cos(2 pi L_c / L)        (within class c; L_c its size, L the total)

taken as written; for L_c > L / 2 the angle 2 pi L_c / L passes pi and the bound falls again.

Cost-sensitive learning (Sec. 3.3): each sample is weighted by the inverse frequency of its
class in the batch, ``w_i = B / n_c(i)`` with ``B = M l`` the batch size and ``n_c`` the
batch's samples of class c, inside Eq. 9's average: ``1 / B sum_i w_i L_i = sum_i L_i / n_c(i)``,
the sum over the batch's classes of each class's mean loss (the default). With
``normalise_weights`` the weights are divided by their sum instead, ``sum w_i L_i / sum w_i``:
the mean over the batch's classes of each class's mean loss, whose scale does not grow with
the number of classes a batch holds. Without cost-sensitive learning the loss is the plain
mean over the batch, Eq. 9's 1 / (M l).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facerepro.loss_options import CENTROIDS, CLMLEOptions


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} is {value}; it is a fraction of the paper's upper bound and "
                         f"must lie in [0, 1]")


class _EqNineOptions(nn.Module):
    """The options both CLMLE losses take, checked: margin fractions and centroid rule."""

    def __init__(self, a1: float, a2: float, centroids: str, normalise_weights: bool) -> None:
        super().__init__()
        _check_fraction("a1", a1)
        _check_fraction("a2", a2)
        if centroids not in CENTROIDS:
            raise ValueError(f"centroids is {centroids!r}; allowed: {', '.join(CENTROIDS)}")
        self.centroids, self.normalise_weights = centroids, normalise_weights


def batch_centroids(f: torch.Tensor, member: torch.Tensor, clusters: int,
                    centroids: str) -> torch.Tensor:
    """The centroid of each of ``clusters`` clusters from the unit features ``f`` (n, d) of
    its members (``member``: each row's cluster 0..clusters-1): their plain mean (``"mean"``,
    Sec. 3.3) or that mean normalised to unit length (``"unit"``)."""
    sums = torch.zeros(clusters, f.shape[1], dtype=f.dtype, device=f.device).index_add(
        0, member, f)
    if centroids == "unit":
        return F.normalize(sums, dim=1)
    return sums / torch.bincount(member, minlength=clusters).to(f.dtype)[:, None]


def _masked_logsumexp(sim: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor,
                                                                      torch.Tensor]:
    """logsumexp over the masked entries of the last axis, and whether a row has any."""
    present = mask.any(-1)
    # A row with no entry keeps its values: an all -inf row would give a NaN gradient that
    # the zero weight of the empty term cannot cancel (0 * NaN).
    keep = mask | ~present[..., None]
    return sim.masked_fill(~keep, float("-inf")).logsumexp(-1), present


class CLMLELoss(_EqNineOptions):
    """Eq. 9 over a batch of clusters; ``target[:, 0]`` is the class, ``target[:, 1]`` the
    cluster.

    After each forward, ``cluster_losses`` maps every cluster id of the batch to the mean
    unweighted L_i of its samples (detached): the cache the cluster sampler picks its hardest
    query cluster from.
    """

    margin_between: torch.Tensor
    margin_within: torch.Tensor

    def __init__(self, num_classes: int, class_sizes: Sequence[int] | np.ndarray,
                 a1: float = CLMLEOptions.a1, a2: float = CLMLEOptions.a2,
                 cost_sensitive: bool = CLMLEOptions.cost_sensitive,
                 centroids: str = CLMLEOptions.centroids,
                 normalise_weights: bool = CLMLEOptions.normalise_weights) -> None:
        super().__init__(a1, a2, centroids, normalise_weights)
        sizes = np.asarray(class_sizes, dtype=np.float64)
        if sizes.shape != (num_classes,):
            raise ValueError(f"class_sizes has shape {sizes.shape}; need one size for each of "
                             f"the {num_classes} classes")
        if (sizes < 0).any() or sizes.sum() <= 0:
            raise ValueError("class_sizes must be non-negative with a positive total")
        self.num_classes, self.cost_sensitive = num_classes, cost_sensitive
        self.register_buffer("margin_between",
                             torch.tensor(a1 * (1 - math.cos(2 * math.pi / num_classes))))
        within = a2 * (1 - np.cos(2 * math.pi * sizes / sizes.sum()))
        self.register_buffer("margin_within", torch.tensor(within, dtype=torch.float32))
        self.cluster_losses: dict[int, float] = {}

    def forward(self, embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim != 2 or target.shape != (len(embeddings), 2):
            raise ValueError(f"target must be (B, 2) = (class, cluster) per sample, got "
                             f"{tuple(target.shape)} for {len(embeddings)} embeddings")
        labels, clusters = target[:, 0], target[:, 1]
        ids, member = torch.unique(clusters, return_inverse=True)
        cluster_class = torch.zeros_like(ids).scatter_(0, member, labels)
        # Both checks in one transfer: on a GPU each read of a flag waits for the device.
        out_of_range, mixed = torch.stack([
            ((labels < 0) | (labels >= self.num_classes)).any(),
            (cluster_class[member] != labels).any()]).tolist()
        if out_of_range:
            raise ValueError(f"class ids must lie in [0, {self.num_classes})")
        if mixed:
            raise ValueError("a cluster id is shared by samples of different classes; a "
                             "cluster belongs to one class")
        f = F.normalize(embeddings.to(torch.promote_types(embeddings.dtype, torch.float32)),
                        dim=1)
        mu = batch_centroids(f, member, len(ids), self.centroids)
        sim = f @ mu.T
        rows = torch.arange(len(f), device=f.device)
        own = sim[rows, member]
        same_class = cluster_class[None, :] == labels[:, None]
        other_class, between_present = _masked_logsumexp(sim, ~same_class)
        own_cluster = torch.zeros_like(same_class)
        own_cluster[rows, member] = True
        other_same, within_present = _masked_logsumexp(sim, same_class & ~own_cluster)
        between = (other_class - own + self.margin_between.to(f.dtype)).clamp_min(0)
        within = (other_same - own + self.margin_within.to(f.dtype)[labels]).clamp_min(0)
        per_sample = (torch.where(between_present, between, 0.0)
                      + torch.where(within_present, within, 0.0))
        self._cache_cluster_losses(ids, member, per_sample.detach())
        if not self.cost_sensitive:
            return per_sample.mean()
        weight = 1.0 / torch.bincount(labels)[labels].to(f.dtype)
        if self.normalise_weights:
            return (weight * per_sample).sum() / weight.sum()
        return (weight * per_sample).sum()

    def _cache_cluster_losses(self, ids: torch.Tensor, member: torch.Tensor,
                              per_sample: torch.Tensor) -> None:
        total = torch.zeros(len(ids), dtype=per_sample.dtype, device=per_sample.device)
        total.index_add_(0, member, per_sample)
        mean = total / torch.bincount(member, minlength=len(ids)).to(total.dtype)
        self.cluster_losses = dict(zip(ids.tolist(), mean.tolist(), strict=True))


class MultiTaskCLMLELoss(_EqNineOptions):
    """Eq. 9 for each of T tasks on its own slice of the embedding, averaged over the tasks.

    ``labels`` are the training labels: (n,) identities 0..C-1 (one task, C classes) or
    (n, A) 0/1 attributes (A two-class tasks; the paper trains one 64-d head per attribute
    "in a multi-task way", Sec. 5.3). Task t reads embedding columns t d .. (t + 1) d - 1 and
    ``target[:, t] = (class, cluster)``; class sizes for the a2 bounds are counted in
    ``labels``. Every task's loss is computed on every batch, whichever task's clusters it
    was drawn for: the paper's cost-sensitive weights re-balance all attributes at once
    because re-sampling cannot. ``cluster_losses`` is the list of the tasks' caches.

    The tasks are computed together (one similarity tensor over every task's clusters, masked
    to the sample's own task), which is :class:`CLMLELoss` per task, term for term: 40
    attribute tasks one after the other cost ~40 times the small-op overhead per step.
    """

    margin_between: torch.Tensor
    margin_within: torch.Tensor

    def __init__(self, labels: np.ndarray, a1: float = CLMLEOptions.a1,
                 a2: float = CLMLEOptions.a2,
                 cost_sensitive: bool = CLMLEOptions.cost_sensitive,
                 centroids: str = CLMLEOptions.centroids,
                 normalise_weights: bool = CLMLEOptions.normalise_weights) -> None:
        super().__init__(a1, a2, centroids, normalise_weights)
        labels = np.asarray(labels)
        if labels.ndim == 1:
            labels = labels[:, None]
            classes = int(labels.max()) + 1
        elif labels.ndim == 2:
            if not np.isin(labels, (0, 1)).all():
                raise ValueError("(n, A) labels must be 0/1 attributes")
            classes = 2
        else:
            raise ValueError(f"labels must be (n,) classes or (n, A) attributes, got shape "
                             f"{labels.shape}")
        sizes = np.stack([np.bincount(column, minlength=classes) for column in labels.T])
        self.tasks, self.classes, self.cost_sensitive = labels.shape[1], classes, cost_sensitive
        self.register_buffer("margin_between", torch.full(
            (self.tasks,), a1 * (1 - math.cos(2 * math.pi / classes))))
        within = a2 * (1 - np.cos(2 * math.pi * sizes / sizes.sum(1, keepdims=True)))
        self.register_buffer("margin_within", torch.tensor(within, dtype=torch.float32))
        self.cluster_losses: list[dict[int, float]] = [{} for _ in range(self.tasks)]

    def forward(self, embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``embeddings`` (B, T d), ``target`` (B, T, 2); (B, 2) is accepted for T = 1."""
        if target.ndim == 2:
            target = target[:, None]
        batch, tasks = len(embeddings), self.tasks
        if target.shape != (batch, tasks, 2) or embeddings.shape[1] % tasks:
            raise ValueError(f"{tasks} tasks need a (B, {tasks}, 2) target and embeddings of "
                             f"a multiple of {tasks} columns, got {tuple(target.shape)} and "
                             f"{tuple(embeddings.shape)}")
        labels, clusters = target[..., 0], target[..., 1]
        if ((labels < 0) | (labels >= self.classes)).any():
            raise ValueError(f"class ids must lie in [0, {self.classes})")
        task = torch.arange(tasks, device=target.device).expand(batch, tasks)
        # one id per (task, cluster): the clusters of different tasks never mix
        span = int(clusters.max()) + 1
        ids, member = torch.unique(task * span + clusters, return_inverse=True)
        cluster_task = ids // span
        cluster_class = torch.zeros_like(ids).scatter_(0, member.flatten(), labels.flatten())
        if (cluster_class[member] != labels).any():
            raise ValueError("a cluster id is shared by samples of different classes; a "
                             "cluster belongs to one class")
        f = F.normalize(embeddings.to(torch.promote_types(embeddings.dtype, torch.float32))
                        .view(batch, tasks, -1), dim=2)
        mu = batch_centroids(f.flatten(0, 1), member.flatten(), len(ids), self.centroids)
        # Each task's clusters in its own row of a (T, K) grid, so a sample meets only its
        # own task's centroids: ids are sorted, so a task's clusters are contiguous.
        first = torch.searchsorted(cluster_task, torch.arange(tasks, device=ids.device))
        slot = torch.arange(len(ids), device=ids.device) - first[cluster_task]
        width = int(slot.max()) + 1
        grid = torch.zeros(tasks, width, f.shape[2], dtype=f.dtype, device=f.device)
        grid[cluster_task, slot] = mu
        valid = torch.zeros(tasks, width, dtype=torch.bool, device=f.device)
        valid[cluster_task, slot] = True
        grid_class = torch.full((tasks, width), -1, dtype=labels.dtype, device=f.device)
        grid_class[cluster_task, slot] = cluster_class
        sim = torch.einsum("btd,tkd->btk", f, grid)
        own_slot = slot[member][..., None]
        own = sim.gather(2, own_slot)[..., 0]
        same_class = valid[None] & (grid_class[None] == labels[..., None])
        own_cluster = torch.zeros_like(same_class).scatter_(2, own_slot, True)
        other_class, between_present = _masked_logsumexp(sim, valid[None] & ~same_class)
        other_same, within_present = _masked_logsumexp(sim, same_class & ~own_cluster)
        between = (other_class - own + self.margin_between.to(f.dtype)).clamp_min(0)
        within = (other_same - own + self.margin_within.to(f.dtype)[task, labels]).clamp_min(0)
        per_sample = (torch.where(between_present, between, 0.0)
                      + torch.where(within_present, within, 0.0))                  # (B, T)
        self._cache_cluster_losses(ids % span, cluster_task, member, per_sample.detach())
        if not self.cost_sensitive:
            return per_sample.mean()
        counts = torch.zeros(tasks, self.classes, dtype=f.dtype, device=f.device).index_put_(
            (task.flatten(), labels.flatten()), torch.ones(batch * tasks, dtype=f.dtype,
                                                           device=f.device), accumulate=True)
        weight = 1.0 / counts[task, labels]
        if self.normalise_weights:
            return ((weight * per_sample).sum(0) / weight.sum(0)).mean()
        return (weight * per_sample).sum(0).mean()

    def _cache_cluster_losses(self, cluster: torch.Tensor, cluster_task: torch.Tensor,
                              member: torch.Tensor, per_sample: torch.Tensor) -> None:
        total = torch.zeros(len(cluster), dtype=per_sample.dtype, device=per_sample.device)
        total.index_add_(0, member.flatten(), per_sample.flatten())
        mean = total / torch.bincount(member.flatten(), minlength=len(cluster)).to(total.dtype)
        self.cluster_losses = [{} for _ in range(self.tasks)]
        for c, t, value in zip(cluster.tolist(), cluster_task.tolist(), mean.tolist(),
                               strict=True):
            self.cluster_losses[t][c] = value
