"""Softmax plus center loss.

Wen, Zhang, Li, Qiao, "A Discriminative Feature Learning Approach for Deep Face Recognition",
ECCV 2016:

    L_C = 1/2 sum_i ||x_i - c_{y_i}||_2^2                                   (Eq. 2)
    delta_c_j = sum_i [y_i = j] (c_j - x_i) / (1 + sum_i [y_i = j])          (Eq. 4)
    L = L_S + lambda * L_C                                                  (Eq. 5)

with L_S the softmax cross-entropy (``SoftmaxLoss``). L_C is divided by the batch size, as
the authors' Caffe layer does, so lambda does not depend on it. The centres are not
optimised by the optimizer: each training forward moves them by ``c_j <- c_j - alpha
delta_c_j`` (Algorithm 1), after the loss was computed with the old ones.
"""

from __future__ import annotations

import torch
from torch import nn

from facerepro.loss_options import CenterOptions
from facerepro.losses.softmax import SoftmaxLoss


class CenterLoss(nn.Module):
    """``SoftmaxLoss`` + ``center_weight`` x L_C, with centres updated by Eq. 4."""

    centers: torch.Tensor

    def __init__(self, embedding_dim: int, num_classes: int,
                 center_weight: float = CenterOptions.center_weight,
                 center_alpha: float = CenterOptions.center_alpha,
                 bias: bool = CenterOptions.bias) -> None:
        super().__init__()
        self.identification = SoftmaxLoss(embedding_dim, num_classes, bias)
        self.center_weight, self.center_alpha = center_weight, center_alpha
        # A buffer, not a parameter: Eq. 4 moves the centres, and it must reach checkpoints.
        self.register_buffer("centers", torch.zeros(num_classes, embedding_dim))

    def center_term(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """L_C (Eq. 2) averaged over the batch, with gradient to the embeddings only."""
        return 0.5 * (embeddings - self.centers[labels]).pow(2).sum(1).mean()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = (self.identification(embeddings, labels)
                + self.center_weight * self.center_term(embeddings, labels))
        if self.training:
            self._update_centers(embeddings, labels)
        return loss

    @torch.no_grad()
    def _update_centers(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        x = embeddings.detach().to(self.centers.dtype)
        counts = torch.bincount(labels, minlength=len(self.centers)).to(x.dtype)[:, None]
        sums = torch.zeros_like(self.centers).index_add_(0, labels, x)
        # Classes absent from the batch get delta 0; the 1 + n_j keeps it finite for them.
        delta = (counts * self.centers - sums) / (1 + counts)
        self.centers -= self.center_alpha * delta

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.identification.logits(embeddings)
