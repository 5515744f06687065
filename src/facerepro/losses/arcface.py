"""ArcFace: additive angular margin loss (Deng, Guo, Xue, Zafeiriou, "ArcFace: Additive
Angular Margin Loss for Deep Face Recognition", CVPR 2019).

Followed from our reading of the paper's text (arXiv 1801.07698; no PDF is kept in this
repository, so equation numbers are as we know them). With the bias removed, the class weights
and the feature L2-normalised and the feature rescaled to s, the logit of class j is
s cos(theta_j) (Eq. 2); ArcFace adds the margin m to the target angle itself (Eq. 3):

    L_3 = -1/N sum_i log( e^{s cos(theta_{y_i} + m)}
                          / (e^{s cos(theta_{y_i} + m)} + sum_{j != y_i} e^{s cos(theta_j)}) )

with s = 64 and m = 0.5 (Sec. 3 of the paper; :class:`facerepro.loss_options.ArcFaceOptions`).
cos(theta + m) is computed as cos(theta) cos(m) - sin(theta) sin(m), sin(theta) =
sqrt(1 - cos^2(theta)), so that no arccos enters the gradient.

**theta_y + m > pi.** cos(theta + m) decreases in theta only while theta + m <= pi: past
theta = pi - m (151 degrees for m = 0.5) it rises again, so a feature very far from its class
would be pushed further away. Eq. 3 and the paper's pseudo-code (Algorithm 1: arccos of the
target cosine, then cos(theta + m)) write no exception; the paper compares the target logit
curves only over the range of target angles that training visits (as we recall Sec. 2.2 and
Fig. 4, from about 90 degrees at the start down to about 30), where every choice below is the
same. The option ``fallback`` decides:

- ``linear`` (default): for theta_y > pi - m the target logit is cos(theta_y) - m sin(m),
  the authors' released code (InsightFace, ``easy_margin`` off) and pytorch-metric-learning's
  ``ArcFaceLoss``. The target logit then decreases over the whole of [0, pi] (with a step of
  cos(m) + m sin(m) - 1 at pi - m): the setting the paper's numbers were trained with.
- ``clamp``: cos(min(theta_y + m, pi)) = -1 past pi - m: monotone, but such features get no
  pull from their own class's logit.
- ``none``: cos(theta_y + m) everywhere, as Eq. 3 is written.
"""

from __future__ import annotations

import math

import torch

from facerepro.loss_options import ARC_FALLBACKS, ArcFaceOptions
from facerepro.losses.cosface import NormalizedMarginLoss


def _sin_from_cos(c: torch.Tensor) -> torch.Tensor:
    """sqrt(1 - c^2) for c in [-1, 1]. The square root has an infinite derivative at 0 (theta =
    0 or pi), which would turn into a NaN gradient; there sin(theta) gets none instead."""
    squared = 1 - c * c
    positive = squared > 0
    return torch.where(positive, torch.where(positive, squared, 1.0).sqrt(), 0.0)


class ArcFaceLoss(NormalizedMarginLoss):
    """ArcFace Eq. 3: target logit s cos(theta_y + m), other logits s cos(theta_j); past
    theta_y = pi - m the target follows ``fallback``."""

    def __init__(self, embedding_dim: int, num_classes: int, s: float = ArcFaceOptions.s,
                 m: float = ArcFaceOptions.m,
                 fallback: str = ArcFaceOptions.fallback) -> None:
        if fallback not in ARC_FALLBACKS:
            raise ValueError(f"fallback must be one of {ARC_FALLBACKS}, got {fallback!r}")
        if not m < math.pi:
            raise ValueError(f"margin m must be below pi, got {m!r}")
        super().__init__(embedding_dim, num_classes, s, m)
        self.fallback = fallback
        self.cos_m, self.sin_m = math.cos(self.m), math.sin(self.m)
        # theta > pi - m  <=>  cos(theta) < cos(pi - m) = -cos(m)
        self.threshold = -self.cos_m
        self.beyond = torch.tensor(float("nan"))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fallback={self.fallback}"

    def target(self, cos_y: torch.Tensor) -> torch.Tensor:
        c = cos_y.clamp(-1.0, 1.0)
        sin = _sin_from_cos(c)
        shifted = c * self.cos_m - sin * self.sin_m
        inside = c > self.threshold
        with torch.no_grad():
            self.beyond = (~inside).float().mean()
        if self.fallback == "none":
            return shifted
        if self.fallback == "linear":
            return torch.where(inside, shifted, cos_y - self.m * self.sin_m)
        return torch.where(inside, shifted, torch.full_like(c, -1.0))

    def diagnostics(self) -> dict[str, float]:
        """The mean target angle (degrees) and the share of the last batch's features past
        pi - m, where ``fallback`` acts."""
        return {**super().diagnostics(), "beyond_pi_minus_m": float(self.beyond)}
