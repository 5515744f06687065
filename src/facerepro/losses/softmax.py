"""Softmax identification loss: the baseline every paper compares against.

    L = -1/B sum_i log( exp(W_{y_i}' f_i + b_{y_i}) / sum_j exp(W_j' f_i + b_j) )

(SphereFace, Eq. 1: the "original softmax" of Table 3.) With ``bias=False`` every b_j = 0:
step C ("remove biases") of the SphereFace Table 6 ablation.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from facerepro.loss_options import SoftmaxOptions


class SoftmaxLoss(nn.Module):
    """Linear classifier over training identities plus cross-entropy."""

    def __init__(self, embedding_dim: int, num_classes: int,
                 bias: bool = SoftmaxOptions.bias) -> None:
        super().__init__()
        self.classifier = nn.Linear(embedding_dim, num_classes, bias=bias)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.classifier(embeddings), labels)

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.classifier(embeddings)
