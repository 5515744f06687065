"""Pair logistic loss of "Packing a Face into an int32" (Fan et al., ACM MM 2014, Sec. 2.1).

Eq. 2-3, with l = -1 for a same-identity pair and l = +1 for a different one:

    L = sum_pairs log(1 + exp(-l (alpha d(f(x1), f(x2)) - beta))),   d = |f1 - f2|_1

(the Hamming distance for binary codes). The input is the compact net's training output
g = 2^Q f_model(x) in [0, 2^Q) (``models/compact.py``); the code f = floor(g) (Eq. 4) is not
differentiable, and ``technique`` picks one of the paper's three ways through it:

- ``rounding`` (Eq. 5): f = g + r with the residual r = floor(g) - g held constant in the
  backward pass (a straight-through estimator): the loss is taken at the codes, its gradient
  passed to g unchanged. floor(g) is the net's eval code, since the net keeps g below 2^Q.
- ``expected`` (Eq. 6-7), binary codes only: bit i is 1 with probability p_i = g_i / 2 (this
  assumes Q = 1; the caller checks the net's bits) and the loss is the expectation over the
  independent bits, sum_j D[n][j] log(1 + exp(-l (alpha j - beta))), with the distribution D of
  the Hamming distance from the recurrence in :func:`hamming_distribution`.
- ``std`` (Eq. 8): L on the unrounded g plus omega sum_i Std(g_i), the standard deviation of
  each output dimension over the batch (divisor B; the paper: over the training set). The paper
  wants the outputs to saturate at 0 / 2^Q; a dimension whose values sit at both extremes has
  the largest spread, so the term must reward spread: omega < 0 (default -0.1). omega > 0
  would pull every output to the batch mean. ``omega`` is used by this technique only; the
  others ignore it.

Pairs are rows (2i, 2i + 1), the layout of the pair sampler. The loss is the mean over the
B / 2 pairs, where the paper sums, so that the learning rate does not depend on the batch size.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from facerepro.loss_options import TECHNIQUES, PairLogisticOptions


def hamming_distribution(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """Eq. 7: (P, n) bit probabilities of two codes -> (P, n + 1), P(Hamming distance = j).

    D[i][j] = (1 - p1 - p2 + 2 p1 p2) D[i-1][j] + (p1 + p2 - 2 p1 p2) D[i-1][j-1], D[0][0] = 1,
    D[i][-1] = 0; the loop runs over the n bits, every pair at once.
    """
    differ = p1 + p2 - 2 * p1 * p2
    dist = torch.ones_like(differ[:, :1])
    for i in range(differ.shape[1]):
        q = differ[:, i : i + 1]
        # After bit i the distance ranges over 0..i+1: the equal-bit term keeps j, the
        # differing one moves it to j + 1 (the zero columns are D[i][i+1] = 0 and D[i][-1] = 0).
        dist = F.pad(dist * (1 - q), (0, 1)) + F.pad(dist * q, (1, 0))
    return dist


class PairLogisticLoss(nn.Module):
    """Eq. 2-3 through one of the rounding techniques of Sec. 2.1 (Eq. 5, 6-7 or 8)."""

    def __init__(self, alpha: float = PairLogisticOptions.alpha,
                 beta: float = PairLogisticOptions.beta,
                 technique: str = PairLogisticOptions.technique,
                 omega: float = PairLogisticOptions.omega) -> None:
        super().__init__()
        if technique not in TECHNIQUES:
            raise ValueError(f"unknown rounding technique {technique!r}; "
                             f"known: {', '.join(TECHNIQUES)}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.technique = technique
        self.omega = float(omega)

    def extra_repr(self) -> str:
        omega = f", omega={self.omega}" if self.technique == "std" else ""
        return f"alpha={self.alpha}, beta={self.beta}, technique={self.technique}{omega}"

    def _pair_term(self, distance: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        # softplus(x) = log(1 + e^x) without overflow for a large x
        return F.softplus(-sign * (self.alpha * distance - self.beta))

    def forward(self, g: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if len(g) % 2:
            raise ValueError(f"{len(g)} rows do not form pairs: the pair logistic loss needs "
                             f"the pair sampler (sampler: pair)")
        same = labels[0::2] == labels[1::2]
        sign = torch.where(same, -1.0, 1.0).to(g.dtype)
        if self.technique == "expected":
            dist = hamming_distribution(g[0::2] / 2, g[1::2] / 2)
            j = torch.arange(dist.shape[1], dtype=g.dtype, device=g.device)
            return (dist * self._pair_term(j, sign[:, None])).sum(1).mean()
        f = g + (torch.floor(g) - g).detach() if self.technique == "rounding" else g
        loss = self._pair_term((f[0::2] - f[1::2]).abs().sum(1), sign).mean()
        if self.technique == "std":
            loss = loss + self.omega * _safe_sqrt(g.var(0, correction=0)).sum()
        return loss


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    # sqrt has an infinite derivative at 0: a dimension constant over the batch would give NaN
    # gradients. It has no direction to spread in, so it gets no gradient.
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, 1.0).sqrt(), 0.0)
