"""Joint identification-verification supervision of one feature layer, or of several.

Sun, Chen, Wang, Tang, DeepID2, NIPS 2014, Eq. 3 (Verif as in its Eq. 2):

    L = Ident(f, t) + lambda * Verif(f_i, f_j, y_ij)

``Ident`` the softmax cross-entropy over training identities (``SoftmaxLoss``), ``Verif`` the
contrastive loss on the pairs of the batch (``ContrastiveLoss``), both on the same feature f;
DeepID2 used lambda = 0.05. It is also SphereFace Table 4's "softmax + contrastive" baseline.

DeepID2+ (Sun, Wang, Tang, CVPR 2015, Sec. 3 and Fig. 2) supervises FC-1..FC-4 simultaneously,
each with its own identity classifier:

    L = sum_n [ Ident_n(f^n, t) + lambda * Verif(f^n_i, f^n_j, y_ij) ]     n = 1..4

(``LayerwiseIdentVerifLoss``, one ``IdentVerifLoss`` per supervised layer).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facerepro.loss_options import IdentVerifOptions, LayerwiseIdentVerifOptions
from facerepro.losses.contrastive import ContrastiveLoss
from facerepro.losses.softmax import SoftmaxLoss


class IdentVerifLoss(nn.Module):
    """Softmax identification plus ``verification_weight`` x contrastive verification."""

    def __init__(self, embedding_dim: int, num_classes: int,
                 verification_weight: float = IdentVerifOptions.verification_weight,
                 margin: float = IdentVerifOptions.margin,
                 bias: bool = IdentVerifOptions.bias,
                 margin_scale: str = IdentVerifOptions.margin_scale) -> None:
        super().__init__()
        self.identification = SoftmaxLoss(embedding_dim, num_classes, bias=bias)
        self.verification = ContrastiveLoss(margin, margin_scale)
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

    def diagnostics(self) -> dict[str, float]:
        return self.verification.diagnostics()


class LayerwiseIdentVerifLoss(nn.Module):
    """Sum of one ``IdentVerifLoss`` per supervised layer, each with its own classifier.

    ``layerwise`` is read by the net (``model.supervised``): it decides whether FC-1..FC-3 send
    gradients into the convolutions.
    """

    def __init__(self, dims: Sequence[int], num_classes: int,
                 verification_weight: float = IdentVerifOptions.verification_weight,
                 margin: float = IdentVerifOptions.margin, bias: bool = IdentVerifOptions.bias,
                 layerwise: bool = LayerwiseIdentVerifOptions.layerwise,
                 margin_scale: str = IdentVerifOptions.margin_scale) -> None:
        super().__init__()
        self.dims = tuple(dims)
        self.layers = nn.ModuleList(
            IdentVerifLoss(d, num_classes, verification_weight, margin, bias, margin_scale)
            for d in self.dims)
        self.layerwise = layerwise

    def forward_from(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor
                     ) -> torch.Tensor:
        """The loss of a batch of images ``x``: the trainer's hook for a loss that supervises
        the net's feature layers, not only its output."""
        return self(model.supervised(x, self.layerwise), labels)

    def forward(self, layers: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        if len(layers) != len(self.dims):
            raise ValueError(f"{len(layers)} feature layers given, but the loss supervises "
                             f"{len(self.dims)} (dims {self.dims})")
        pairs = zip(self.layers, layers, strict=True)
        return torch.stack([loss(f, labels) for loss, f in pairs]).sum()

    def diagnostics(self) -> dict[str, float]:
        """Each supervised layer's (FC-1, FC-2, ...) share of pairs inside the margin."""
        return {f"fc{n}/{key}": value for n, loss in enumerate(self.layers, 1)
                for key, value in loss.diagnostics().items()}
