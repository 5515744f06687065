"""DeepID2 and DeepID2+ nets on one face region (paper input 55x47 RGB).

Both share four unpadded stride-1 convolutions, each followed by a ReLU:
conv1 4x4 -> pool -> conv2 3x3 -> pool -> conv3 3x3 -> pool -> conv4 2x2, pools 2x2 stride 2.
At 55x47 the maps are 52x44 -> 26x22 -> 24x20 -> 12x10 -> 10x8 -> 5x4 -> 4x3.

``DeepID2Net`` (Sun, Chen, Wang, Tang, NIPS 2014, Fig. 1): widths 20, 40, 60, 80 and one
160-d feature layer fully connected to both the pooled conv3 and the conv4 maps,

    f = ReLU(W3 . pool3(x) + W4 . conv4(x) + b),

the layer the identification-verification loss supervises. DeepID2 used locally connected
layers (weights not shared across positions) for conv3 and conv4; here they are ordinary
convolutions, which have far fewer parameters and work at any input size.

``DeepID2PlusNet`` (Sun, Wang, Tang, CVPR 2015, Sec. 3 and Fig. 2): widths 128 and a
max-pooling after conv4 too; a 512-d layer FC-n = ReLU(W_n . pool_n(x) + b_n) after each of
the four pooled conv layers, all four supervised (``supervised``). Its features are FC-4.
The paper's "smaller network" ablation is this topology with maps (20, 40, 60, 80) and
``embedding_dim=160``.

Every pool uses ``ceil_mode=True``, so an odd-sized map keeps its last row or column
(4x3 -> 2x2 after DeepID2+'s pool4, not 2x1). At 55x47 pools 1-3 see even sizes, so the paper's
geometry is unchanged. Flatten sizes follow from ``input_size``: any size from 24x24 up works.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

KERNELS = (4, 3, 3, 2)


def _pooled(n: int) -> int:
    return -(-n // 2)       # 2x2 stride-2 max-pooling with ceil_mode=True


def _map_sizes(input_size: tuple[int, int]) -> list[tuple[int, int]]:
    """(H, W) of pool1, pool2, pool3 and the (unpooled) conv4 output."""
    height, width = input_size
    sizes = []
    for i, k in enumerate(KERNELS):
        height, width = height - k + 1, width - k + 1
        if height < 1 or width < 1:
            raise ValueError(f"input {input_size[0]}x{input_size[1]} is too small for the "
                             f"DeepID convolutions (24x24 at least)")
        if i < 3:
            height, width = _pooled(height), _pooled(width)
        sizes.append((height, width))
    return sizes


class _ConvStack(nn.Module):
    """conv1..conv4 with ReLU and the pools after conv1..conv3."""

    def __init__(self, maps: tuple[int, int, int, int]) -> None:
        super().__init__()
        channels = (3, *maps)
        for n, k in enumerate(KERNELS, start=1):
            self.add_module(f"conv{n}", nn.Conv2d(channels[n - 1], channels[n], k))

    def _maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pooled conv1, conv2, conv3 and the unpooled conv4 activations."""
        out = []
        for n in range(1, 5):
            x = F.relu(getattr(self, f"conv{n}")(x))
            if n < 4:
                x = F.max_pool2d(x, 2, ceil_mode=True)
            out.append(x)
        return out


class DeepID2Net(_ConvStack):
    """DeepID2: (B, 3, H, W) -> (B, embedding_dim), one feature layer fed by conv3 and conv4."""

    supervised_layers = 1        # how many feature layers `supervised` returns

    def __init__(self, input_size: tuple[int, int] = (55, 47), embedding_dim: int = 160,
                 maps: tuple[int, int, int, int] = (20, 40, 60, 80)) -> None:
        super().__init__(maps)
        (h3, w3), (h4, w4) = _map_sizes(input_size)[2:]
        self.fc = nn.Sequential(nn.Linear(maps[2] * h3 * w3 + maps[3] * h4 * w4, embedding_dim),
                                nn.ReLU())
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3, conv4 = self._maps(x)[2:]
        return self.fc(torch.cat([pool3.flatten(1), conv4.flatten(1)], 1))

    def supervised(self, x: torch.Tensor, layerwise: bool = True) -> list[torch.Tensor]:
        """[fc]: DeepID2 supervises its one feature layer; ``layerwise`` has nothing to change."""
        return [self(x)]


class DeepID2PlusNet(_ConvStack):
    """DeepID2+: (B, 3, H, W) -> FC-4 (B, embedding_dim); FC-1..FC-4 via ``supervised``."""

    supervised_layers = 4        # how many feature layers `supervised` returns

    def __init__(self, input_size: tuple[int, int] = (55, 47), embedding_dim: int = 512,
                 maps: tuple[int, int, int, int] = (128, 128, 128, 128)) -> None:
        super().__init__(maps)
        sizes = _map_sizes(input_size)
        sizes[3] = (_pooled(sizes[3][0]), _pooled(sizes[3][1]))
        for n, (channels, (h, w)) in enumerate(zip(maps, sizes, strict=True), start=1):
            # Linear and ReLU in one module: a hook on fcN sees the activations the paper
            # binarises at 0.
            self.add_module(f"fc{n}", nn.Sequential(nn.Linear(channels * h * w, embedding_dim),
                                                     nn.ReLU()))
        self.embedding_dim = embedding_dim

    def _pooled_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = self._maps(x)
        maps[3] = F.max_pool2d(maps[3], 2, ceil_mode=True)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Every FC-n runs, so forward hooks on fc1..fc3 see their activations (features of
        # all four layers in one pass).
        return self.supervised(x)[-1]

    def supervised(self, x: torch.Tensor, layerwise: bool = True) -> list[torch.Tensor]:
        """[FC-1, FC-2, FC-3, FC-4] from one pass through the convs.

        ``layerwise=False`` is the paper's "no layer-wise supervision" ablation: FC-1..FC-3 read
        detached conv maps, so their losses still train FC-1..FC-3 (the ablation evaluates all
        four layers) but only FC-4's gradients reach the convolutions.
        """
        maps = self._pooled_maps(x)
        if not layerwise:
            maps = [m.detach() for m in maps[:3]] + maps[3:]
        return [getattr(self, f"fc{n}")(m.flatten(1)) for n, m in enumerate(maps, start=1)]
