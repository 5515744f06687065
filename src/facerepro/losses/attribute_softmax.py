"""One two-way softmax per binary attribute, optionally cost-sensitive: CLMLE's baselines.

Huang, Li, Loy, Tang (TPAMI 2019, Table 5) compare CLMLE with a cost-sensitive softmax on
the same net. Head ``a``'s features ``h_a`` (the net's a-th ``embedding_dim`` slice) feed a
linear two-class classifier ``z_a = W_a h_a + b_a``; the loss is the mean over attributes of
the class-weighted cross-entropy

    L_a = sum_i w_{a, y_ia} CE(z_ia, y_ia) / sum_i w_{a, y_ia},

with ``w_{a, k} = N / (2 N_{a, k})`` (``N_{a, k}`` training faces of class k of attribute a)
when ``cost_sensitive``, else 1: the usual inverse-frequency costs, which make both classes
weigh the same in expectation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facerepro.loss_options import AttributeSoftmaxOptions


class AttributeSoftmaxLoss(nn.Module):
    def __init__(self, embedding_dim: int, positives: np.ndarray, total: int,
                 cost_sensitive: bool = AttributeSoftmaxOptions.cost_sensitive) -> None:
        """``positives``: (A,) training faces with each attribute; ``total``: all of them."""
        super().__init__()
        positives = np.asarray(positives, dtype=np.float64)
        attributes = len(positives)
        self.weight = nn.Parameter(torch.empty(attributes, embedding_dim, 2))
        self.bias = nn.Parameter(torch.zeros(attributes, 2))
        nn.init.xavier_uniform_(self.weight)
        counts = np.stack([total - positives, positives], axis=1)      # (A, 2): no, yes
        # A class with no training face never occurs in a batch: its cost is never used.
        costs = total / (2 * np.maximum(counts, 1)) if cost_sensitive else np.ones_like(counts)
        self.register_buffer("costs", torch.as_tensor(costs, dtype=torch.float32))

    def forward(self, embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        heads = embeddings.view(len(embeddings), len(self.weight), -1)          # (B, A, d)
        logits = torch.einsum("bad,adk->bak", heads, self.weight) + self.bias    # (B, A, 2)
        target = target.long()
        nll = -F.log_softmax(logits, 2).gather(2, target[..., None])[..., 0]    # (B, A)
        weight = self.costs[torch.arange(len(self.weight), device=target.device), target]
        return ((weight * nll).sum(0) / weight.sum(0)).mean()
