"""SphereFace residual nets (Liu et al., CVPR 2017, Table 2).

Each of the four stages is one stride-2 3x3 conv followed by ``units[i]`` residual units of
two 3x3 convs, all with PReLU; widths 64, 128, 256, 512; then FC1 (512-d). As in the paper
there is no nonlinearity after FC1 ("remove the ReLU before FC1"). The 4-layer net is
units (0, 0, 0, 0); 10: (0, 1, 2, 0); 20: (1, 2, 4, 1); 36: (2, 4, 8, 2); 64: (3, 8, 16, 3).
``last_relu`` puts a ReLU after FC1 back: the plain CNN "A" of the paper's Table 6 ablation.
"""

from __future__ import annotations

import torch
from torch import nn

from facerepro.models.init import xavier_

DEPTH_UNITS = {4: (0, 0, 0, 0), 10: (0, 1, 2, 0), 20: (1, 2, 4, 1), 36: (2, 4, 8, 2),
               64: (3, 8, 16, 3)}
WIDTHS = (64, 128, 256, 512)


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1), nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, 1, 1), nn.PReLU(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _halve(n: int) -> int:
    return (n + 1) // 2     # a 3x3 conv, stride 2, padding 1


class SphereNet(nn.Module):
    """SphereFace-style net mapping (B, 3, H, W) to (B, embedding_dim)."""

    def __init__(self, depth: int = 4, input_size: tuple[int, int] = (112, 96),
                 embedding_dim: int = 512, last_relu: bool = False) -> None:
        super().__init__()
        if depth not in DEPTH_UNITS:
            raise ValueError(f"SphereNet depth {depth} not in {sorted(DEPTH_UNITS)}")
        layers: list[nn.Module] = []
        channels = 3
        height, width = input_size
        for width_out, units in zip(WIDTHS, DEPTH_UNITS[depth], strict=True):
            layers += [nn.Conv2d(channels, width_out, 3, 2, 1), nn.PReLU(width_out)]
            layers += [_Residual(width_out) for _ in range(units)]
            channels = width_out
            height, width = _halve(height), _halve(width)
        self.trunk = nn.Sequential(*layers)
        self.fc1 = nn.Linear(channels * height * width, embedding_dim)
        self.last_relu = last_relu
        self.embedding_dim = embedding_dim
        xavier_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc1(self.trunk(x).flatten(1))
        return torch.relu(out) if self.last_relu else out
