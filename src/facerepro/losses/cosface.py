"""CosFace: large margin cosine loss, LMCL (Wang, Wang, Zhou, Ji, Gong, Zhou, Li, Liu,
"CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018).

Followed from our reading of the arXiv text (1801.09414; no PDF is kept in this repository,
so equation numbers are as we know them). The class weights and the feature are L2-normalised
(Eq. 5: W = W* / ||W*||, x = x* / ||x*||, cos(theta_j, i) = W_j' x_i), which gives the
normalised softmax loss (NSL, Eq. 3) with the feature norm fixed to a scale s; LMCL subtracts
a margin m from the target cosine (Eq. 4):

    L_lmc = 1/N sum_i -log( e^{s (cos(theta_{y_i}, i) - m)}
                            / (e^{s (cos(theta_{y_i}, i) - m)}
                               + sum_{j != y_i} e^{s cos(theta_j, i)}) )

There is no bias. The paper trains with s = 64 and m = 0.35 (Sec. 4) and bounds s from below
by the number of classes and the wanted target probability (Sec. 3.4); the defaults are those
of :class:`facerepro.loss_options.CosFaceOptions`. The target logit s (cos theta - m) falls
monotonically with theta over [0, pi], so nothing is piecewise, unlike ArcFace's
(:mod:`facerepro.losses.arcface`), which shares this module's normalised classifier.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from facerepro.loss_options import CosFaceOptions

# Norms are divided by; this only matters for an all-zero embedding or weight row.
_EPS = 1e-12


class NormalizedMarginLoss(nn.Module):
    """A classifier of unit-norm class weights on unit-norm features, logits s cos(theta_j),
    cross-entropy averaged over the batch; subclasses give the target logit's margin
    (:meth:`target`, on cos(theta_y), before the scale s)."""

    def __init__(self, embedding_dim: int, num_classes: int, s: float, m: float) -> None:
        super().__init__()
        if not s > 0:
            raise ValueError(f"scale s must be positive, got {s!r}")
        if not m >= 0:
            raise ValueError(f"margin m must be non-negative, got {m!r}")
        self.s = float(s)
        self.m = float(m)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        # the last training batch's mean target angle, for the training log (diagnostics);
        # a tensor, so that keeping it never synchronises a GPU
        self.target_angle = torch.tensor(float("nan"))

    def extra_repr(self) -> str:
        c, d = self.weight.shape
        return f"embedding_dim={d}, num_classes={c}, s={self.s}, m={self.m}"

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(theta_j) of every embedding to every class weight, (B, C)."""
        return F.normalize(embeddings, dim=1, eps=_EPS) @ F.normalize(self.weight, dim=1,
                                                                      eps=_EPS).t()

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """s cos(theta_j) for every class, without the margin."""
        return self.s * self.cosine(embeddings)

    def target(self, cos_y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosine(embeddings)
        rows = torch.arange(labels.shape[0], device=labels.device)
        cos_y = cos[rows, labels]
        with torch.no_grad():
            self.target_angle = torch.acos(cos_y.clamp(-1.0, 1.0)).mean() * (180 / math.pi)
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        out = torch.where(onehot, self.target(cos_y).unsqueeze(1), cos)
        return F.cross_entropy(self.s * out, labels)

    def diagnostics(self) -> dict[str, float]:
        """The last batch's mean angle (degrees) between a feature and its class weight, the
        quantity the margin acts on (NaN before the first batch)."""
        return {"target_angle": float(self.target_angle)}


class CosFaceLoss(NormalizedMarginLoss):
    """LMCL (CosFace Eq. 4): target logit s (cos(theta_y) - m), other logits s cos(theta_j)."""

    def __init__(self, embedding_dim: int, num_classes: int, s: float = CosFaceOptions.s,
                 m: float = CosFaceOptions.m) -> None:
        super().__init__(embedding_dim, num_classes, s, m)

    def target(self, cos_y: torch.Tensor) -> torch.Tensor:
        return cos_y - self.m
