"""A-Softmax (angular softmax) loss of SphereFace (Liu et al., CVPR 2017).

Class weights are normalised, ||W_j|| = 1, and there is no bias, so the logit of class j is
||x|| cos(theta_j) (the "modified softmax", Sec. 3.1). The target class gets a multiplicative
angular margin m (Eq. 6-7):

    L_i = -log( e^{||x_i|| psi(theta_{y_i})}
                / (e^{||x_i|| psi(theta_{y_i})} + sum_{j != y_i} e^{||x_i|| cos(theta_j)}) )

    psi(theta) = (-1)^k cos(m theta) - 2k,   theta in [k pi/m, (k+1) pi/m],  k = 0..m-1

with cos(m theta) expanded by the multiple-angle formula as a polynomial in cos(theta).
m = 1 gives psi = cos, i.e. the modified softmax (Table 6, step D).

Annealing (Sec. 3.4 and the released Caffe code, margin_inner_product_layer): training starts
close to the modified softmax and the margin is phased in,

    f_{y_i} = (lambda ||x_i|| cos(theta_{y_i}) + ||x_i|| psi(theta_{y_i})) / (1 + lambda)
    lambda  = max(lambda_min, base * (1 + gamma * iter)^(-power))

where the released code does ``iter += 1`` before computing lambda on every training forward.

The margin target and the schedule live in :class:`MultiplicativeMarginLoss`, which the
L-Softmax loss (``l_softmax.py``) shares; only the weight normalisation differs.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn
from torch.nn import functional as F

from facerepro.loss_options import ALLOWED_M, MarginOptions

# Norms are divided by; this only matters for an all-zero embedding or weight row.
_EPS = 1e-12


def _check_m(m: object) -> int:
    if isinstance(m, bool) or not isinstance(m, numbers.Integral) or int(m) not in ALLOWED_M:
        raise ValueError(f"margin m must be an integer in {ALLOWED_M}, got {m!r}")
    return int(m)


def cos_multiple_angle(cos_theta: torch.Tensor, m: int) -> torch.Tensor:
    """cos(m theta) as the Chebyshev polynomial T_m(cos theta), m in 1..4."""
    m = _check_m(m)
    c = cos_theta
    if m == 1:
        return c
    c2 = c * c
    if m == 2:
        return 2 * c2 - 1
    if m == 3:
        return c * (4 * c2 - 3)
    return 8 * c2 * (c2 - 1) + 1


def psi(cos_theta: torch.Tensor, m: int) -> torch.Tensor:
    """SphereFace Eq. 6-7 / L-Softmax Eq. 6: psi(theta) = (-1)^k cos(m theta) - 2k.

    Takes cos(theta) rather than theta so that the gradient flows through the polynomial only;
    acos (infinite slope at +-1) is used for the piecewise-constant k alone.
    """
    m = _check_m(m)
    c = cos_theta.clamp(-1.0, 1.0)
    with torch.no_grad():
        # theta = pi lands on k = m by the floor; psi is continuous there, so k = m - 1 gives
        # the same value while staying inside the definition's range.
        k = torch.floor(torch.acos(c) * (m / math.pi)).clamp_(0, m - 1)
        sign = 1 - 2 * torch.remainder(k, 2)
    return sign * cos_multiple_angle(c, m) - 2 * k


class MultiplicativeMarginLoss(nn.Module):
    """Shared body of A-Softmax and L-Softmax: target logit ||W_y|| ||x|| psi(theta_y).

    Subclasses say whether the rows of W are rescaled to unit norm in every forward
    (``normalize_weights``: A-Softmax) or used as they are (L-Softmax). No bias in either.
    """

    iteration: torch.Tensor
    normalize_weights: bool

    def __init__(
        self,
        embedding_dim: int,
        num_classes: int,
        m: int = MarginOptions.m,
        anneal: bool = MarginOptions.anneal,
        lambda_base: float = MarginOptions.lambda_base,
        lambda_gamma: float = MarginOptions.lambda_gamma,
        lambda_power: float = MarginOptions.lambda_power,
        lambda_min: float = MarginOptions.lambda_min,
    ) -> None:
        super().__init__()
        self.m = _check_m(m)
        self.anneal = bool(anneal)
        self.lambda_base = float(lambda_base)
        self.lambda_gamma = float(lambda_gamma)
        self.lambda_power = float(lambda_power)
        self.lambda_min = float(lambda_min)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        # A buffer, not a Python int, so that a checkpoint carries the schedule position and a
        # resumed run continues it instead of restarting at lambda = base.
        self.register_buffer("iteration", torch.zeros((), dtype=torch.int64))

    def extra_repr(self) -> str:
        c, d = self.weight.shape
        return (
            f"embedding_dim={d}, num_classes={c}, m={self.m}, anneal={self.anneal}, "
            f"lambda_base={self.lambda_base}, lambda_gamma={self.lambda_gamma}, "
            f"lambda_power={self.lambda_power}, lambda_min={self.lambda_min}"
        )

    def _lambda(self, dtype: torch.dtype) -> torch.Tensor:
        # Kept as a tensor on the buffer's device so a training step needs no host sync.
        if not self.anneal:
            return torch.zeros((), dtype=dtype, device=self.iteration.device)
        it = self.iteration.to(dtype)
        lam = self.lambda_base * (1 + self.lambda_gamma * it) ** (-self.lambda_power)
        return lam.clamp_min(self.lambda_min)

    def current_lambda(self) -> float:
        """lambda for the current ``iteration`` (0 when annealing is off)."""
        return float(self._lambda(torch.float64))

    def _effective_weight(self) -> torch.Tensor:
        if self.normalize_weights:
            return F.normalize(self.weight, dim=1, eps=_EPS)
        return self.weight

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """||W_j|| ||x|| cos(theta_j) for every class, without the margin."""
        return embeddings @ self._effective_weight().t()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.iteration += 1
        w = self._effective_weight()
        raw = embeddings @ w.t()
        rows = torch.arange(labels.shape[0], device=labels.device)
        raw_y = raw[rows, labels]
        scale_y = (
            torch.linalg.vector_norm(embeddings, dim=1) * torch.linalg.vector_norm(w, dim=1)[labels]
        )
        cos_y = raw_y / scale_y.clamp_min(_EPS)
        # bf16/fp16 cannot hold the iteration count (bf16 rounds 257 to 256), so the schedule
        # is evaluated in at least float32 and only the result is cast down.
        lam = self._lambda(torch.promote_types(embeddings.dtype, torch.float32))
        lam = lam.to(embeddings.dtype)
        target = (lam * raw_y + scale_y * psi(cos_y, self.m)) / (1 + lam)
        onehot = F.one_hot(labels, raw.shape[1]).bool()
        out = torch.where(onehot, target.unsqueeze(1), raw)
        return F.cross_entropy(out, labels)


class ASoftmaxLoss(MultiplicativeMarginLoss):
    """SphereFace A-Softmax: unit-norm class weights, no bias, margin m (m = 1: modified
    softmax). ``anneal=False`` means lambda = 0 (the pure A-Softmax target)."""

    normalize_weights = True
