"""Joint identification-verification supervision of one feature layer.

Sun, Chen, Wang, Tang, DeepID2, NIPS 2014, Eq. 3 (Verif as in its Eq. 2):

    L = Ident(f, t) + lambda * Verif(f_i, f_j, y_ij)

``Ident`` the softmax cross-entropy over training identities (``SoftmaxLoss``), ``Verif`` the
contrastive loss on the pairs of the batch (``ContrastiveLoss``), both on the same feature f;
DeepID2 used lambda = 0.05. It is also SphereFace Table 4's "softmax + contrastive" baseline.
DeepID2+ applies this supervision to each of FC-1..FC-4; one instance per layer, summed.
"""

from __future__ import annotations

import torch
from torch import nn

from facerepro.losses.contrastive import ContrastiveLoss
from facerepro.losses.softmax import SoftmaxLoss


class IdentVerifLoss(nn.Module):
    """Softmax identification plus ``verification_weight`` x contrastive verification."""

    def __init__(self, embedding_dim: int, num_classes: int, verification_weight: float = 0.05,
                 margin: float = 1.0, bias: bool = True) -> None:
        super().__init__()
        self.identification = SoftmaxLoss(embedding_dim, num_classes, bias=bias)
        self.verification = ContrastiveLoss(margin)
        self.verification_weight = verification_weight

    def terms(self, embeddings: torch.Tensor,
              labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The unweighted (Ident, Verif) pair, for logging each signal."""
        return self.identification(embeddings, labels), self.verification(embeddings, labels)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ident, verif = self.terms(embeddings, labels)
        return ident + self.verification_weight * verif

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.identification.logits(embeddings)
