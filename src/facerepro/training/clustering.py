"""CLMLE's clusters during training: embed the training faces, cluster every class, draw
cluster batches, and re-cluster on the latest features every ``clustering.every`` steps.

Huang, Li, Loy, Tang (TPAMI 2019, Sec. 3): each class is split by spherical k-means into
clusters of about ``l`` faces, on features of a pretrained net first (a softmax run:
``init_from``) and then on the net's own features as it trains. A run has T tasks: one for
identities; one per attribute for the attribute net, whose batches go round the attributes
(each attribute's clusters are its two classes' clusters on its own head). Each task has its
own :class:`~facerepro.training.samplers.ClusterSampler`; the training targets are
``(class, cluster)`` per task, shape (n, T, 2), updated in place at every re-clustering.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from torch import nn

from facerepro.spherical_kmeans import cluster_per_class
from facerepro.training import samplers

log = logging.getLogger(__name__)


class ClusterBatches:
    """The sampler of a CLMLE run: one cluster sampler per task, batches in task order.

    It hands the trainer its own ``targets`` and is refreshed after every step
    (:meth:`refresh`), so the trainer draws its batches in step rather than ahead.
    """

    def __init__(self, classes: np.ndarray, batch_size: int, seed: int, size: int,
                 every: int, **sampler_options: object) -> None:
        """``classes``: (n,) identities or (n, T) classes of T tasks, as integers; ``size``:
        images per cluster; ``every``: re-cluster every this many steps."""
        classes = np.asarray(classes)
        classes = classes[:, None] if classes.ndim == 1 else classes
        self.size, self.every, self.seed = size, every, seed
        self.tasks = [samplers.cluster_sampler(classes[:, t], batch_size, seed + t,
                                               **sampler_options)
                      for t in range(classes.shape[1])]
        self.targets = np.zeros((*classes.shape, 2), np.int64)
        self.targets[..., 0] = classes
        self.batches = 0

    def recluster(self, features: np.ndarray, round_: int) -> None:
        """Cluster every task's classes on ``features`` (n, T * d): task t reads columns
        t*d .. (t+1)*d - 1, its own head."""
        width = features.shape[1] // len(self.tasks)
        for t, sampler in enumerate(self.tasks):
            seed = int(np.random.SeedSequence([self.seed, t, round_]).generate_state(1)[0])
            clusters = cluster_per_class(features[:, t * width:(t + 1) * width],
                                         self.targets[:, t, 0], self.size, seed)
            sampler.set_clusters(clusters)
            self.targets[:, t, 1] = clusters.assignment

    def refresh(self, features: Callable[[], np.ndarray], step: int, loss: nn.Module) -> None:
        """Before a fresh run's first step (``step`` 0): cluster on the starting net's
        features. After every step: cache the step's cluster losses (the next query), and
        re-cluster every ``every`` steps, the last step too: a run extended later resumes from
        that clustering."""
        if step == 0:
            self.recluster(features(), 0)
            return
        self.record(loss.cluster_losses)
        if step % self.every == 0:
            self.recluster(features(), step // self.every)
            log.info("step %d re-clustered on the latest features", step)

    def record(self, cluster_losses: list) -> None:
        """Each task's per-cluster losses of the last batch (the query clusters' cache)."""
        for sampler, losses in zip(self.tasks, cluster_losses, strict=True):
            sampler.record_losses(losses)

    def next_batch(self) -> np.ndarray:
        task = self.tasks[self.batches % len(self.tasks)]
        self.batches += 1
        return task.next_batch()

    def state_dict(self) -> dict:
        return {"batches": self.batches, "tasks": [s.state_dict() for s in self.tasks]}

    def load_state_dict(self, state: dict) -> None:
        self.batches = int(state["batches"])
        rows = np.arange(len(self.targets))
        for t, (sampler, task_state) in enumerate(zip(self.tasks, state["tasks"], strict=True)):
            sampler.load_state_dict(task_state)
            self.targets[:, t, 1] = sampler.cluster_of(rows)
