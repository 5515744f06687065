"""The compact-code net of "Packing a Face into an int32" (Fan et al., ACM MM 2014, Sec. 2).

The net gives f_model(x) in [0, 1)^n through a sigmoid head and the code is (Eq. 4)

    f(x) = floor(2^Q f_model(x)),   Q bits per dimension, n Q = 32 bits in the paper.

The paper names only "a 6-layer CNN with about 9M parameters" built from convolution,
max-pooling and g(x) = |tanh(x)| (Eq. 10-12). Here: four 3x3 convs (padding 1) with 32, 64,
128, 256 channels, each followed by |tanh| and a 2x2 max-pool; an 800-unit fully connected
layer with |tanh|; the n-unit linear head with the sigmoid. At width 1.0, a 112x96 input (the
project's SphereFace crop; 7x6x256 after the pools) and n = 32 that is 9,016,448 parameters.
``width`` scales every channel count and the hidden units.

In training mode the forward returns g = 2^Q f_model(x), the real value that the pair loss
rounds (``losses/pair_logistic.py``); in eval mode it returns the integer code floor(g).
"""

from __future__ import annotations

import torch
from torch import nn

from facerepro.models.init import xavier_

CHANNELS = (32, 64, 128, 256)
HIDDEN = 800
_POOLS = len(CHANNELS)


def quantize(g: torch.Tensor, bits: int) -> torch.Tensor:
    """Eq. 4 on g = 2^Q f_model: floor(g) clamped to [0, 2^Q - 1], in g's float dtype.

    The clamp is for g = 2^Q exactly, which a float sigmoid returns once it saturates.
    """
    return torch.floor(g).clamp(0, 2**bits - 1)


class _AbsTanh(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x).abs()


def _scaled(n: int, width: float) -> int:
    return max(1, round(n * width))


class CompactNet(nn.Module):
    """(B, 3, H, W) -> (B, embedding_dim): g = 2^Q f_model(x) in training, the code in eval."""

    def __init__(self, input_size: tuple[int, int], embedding_dim: int, bits: int = 1,
                 width: float = 1.0) -> None:
        super().__init__()
        height, wide = input_size
        if min(height, wide) < 2**_POOLS:
            raise ValueError(f"input {height}x{wide} is too small for {_POOLS} 2x2 pools: "
                             f"both sides must be at least {2**_POOLS}")
        if bits < 1:
            raise ValueError(f"bits per dimension must be at least 1, got {bits}")
        layers: list[nn.Module] = []
        channels = 3
        for c in CHANNELS:
            out = _scaled(c, width)
            layers += [nn.Conv2d(channels, out, 3, 1, 1), _AbsTanh(), nn.MaxPool2d(2)]
            channels = out
            height, wide = height // 2, wide // 2
        self.trunk = nn.Sequential(*layers)
        hidden = _scaled(HIDDEN, width)
        self.fc = nn.Sequential(nn.Linear(channels * height * wide, hidden), _AbsTanh())
        self.head = nn.Linear(hidden, embedding_dim)
        self.embedding_dim = embedding_dim
        self.bits = bits
        xavier_(self)

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, bits={self.bits}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_model = torch.sigmoid(self.head(self.fc(self.trunk(x).flatten(1))))
        g = 2**self.bits * f_model
        if not self.training:
            return quantize(g, self.bits)
        # A saturated float sigmoid returns exactly 1, i.e. g = 2^Q, whose floor is outside the
        # code range. Capping g at the largest float below 2^Q makes the loss's floor(g) the
        # eval code; the cap costs no gradient, since the sigmoid's is already 0 there.
        return g.clamp(max=2**self.bits * (1 - torch.finfo(g.dtype).eps / 2))
