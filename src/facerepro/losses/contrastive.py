"""DeepID2 verification loss on pairs (the contrastive loss).

Sun, Chen, Wang, Tang, NIPS 2014, Eq. 2 (DeepID2+, CVPR 2015, uses the same at every FC-n):

    Verif(f_i, f_j, y_ij) = 1/2 ||f_i - f_j||_2^2                       if y_ij = 1 (same)
                            1/2 max(0, m - ||f_i - f_j||_2)^2            if y_ij = -1

averaged over the pairs of the batch. Pairs are rows (2i, 2i + 1), the layout of the pair
sampler. With ``scale="feature_norm"`` (our option, not DeepID2's) the margin is
``m * mean_k ||f_k||`` over the batch's rows, held constant in the gradient: a margin in units
of the features' own size.
"""

from __future__ import annotations

import torch
from torch import nn


def _safe_norm(squared: torch.Tensor) -> torch.Tensor:
    # sqrt has an infinite derivative at 0, which turns identical embeddings into NaN
    # gradients; at exactly 0 the norm has no gradient direction, so it gets none.
    positive = squared > 0
    return torch.where(positive, torch.where(positive, squared, 1.0).sqrt(), 0.0)


class ContrastiveLoss(nn.Module):
    """Eq. 2 on consecutive rows, mean over the B / 2 pairs.

    A different-person pair acts only while it is inside the margin (||f_i - f_j|| < m): the
    share of such pairs in the last batch is kept for the training log (:meth:`diagnostics`),
    since a margin below the features' scale silently leaves the term without effect.
    """

    def __init__(self, margin: float, scale: str = "absolute") -> None:
        super().__init__()
        if scale not in ("absolute", "feature_norm"):
            raise ValueError(f"margin scale must be absolute or feature_norm, not {scale!r}")
        self.margin, self.scale = margin, scale
        self.inside_margin = torch.tensor(float("nan"))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if len(embeddings) % 2:
            raise ValueError(f"{len(embeddings)} rows do not form pairs: the contrastive loss "
                             f"needs the pair sampler (sampler: pair)")
        squared = (embeddings[0::2] - embeddings[1::2]).pow(2).sum(1)
        same = labels[0::2] == labels[1::2]
        margin = self.margin
        if self.scale == "feature_norm":
            margin = margin * embeddings.detach().norm(dim=1).mean()
        apart = (margin - _safe_norm(squared)).clamp_min(0).pow(2)
        # kept as a tensor: reading it here would synchronise a GPU every step
        self.inside_margin = ((~same & (squared < margin ** 2)).sum()
                              / (~same).sum().clamp_min(1)).detach()
        return 0.5 * torch.where(same, squared, apart).mean()

    def diagnostics(self) -> dict[str, float]:
        """Share of the last batch's different-person pairs inside the margin (NaN before
        the first batch)."""
        return {"inside_margin": float(self.inside_margin)}
