"""Cross-channel local response normalisation with a hand-written backward pass.

The same function as ``torch.nn.LocalResponseNorm`` (Krizhevsky, Sutskever, Hinton, NIPS 2012,
Sec. 3.3), which FaceNet's nets use as "norm"/"rnorm":

    d_c = k + alpha / n * sum_{c' = c - floor(n/2)}^{c + floor((n-1)/2)} x_{c'}^2
    y_c = x_c * d_c^(-beta)

with channels outside ``[0, C)`` counting as zero. Its gradient, for an upstream gradient g:

    dL/dx_c = g_c d_c^(-beta)
              - (2 alpha beta / n) x_c sum_{i : c in window(i)} g_i x_i d_i^(-beta-1)

Why not torch's module: it builds d from six autograd ops (square, pad, 3-D average pool,
multiply, add, power) and divides, and autograd then differentiates each one. On the CPU that
made LRN about 30% of FaceNet NN2's training step at the default config's size. Here the window
sum is one 1x1 convolution with a banded 0/1 weight (a GEMM over the channels, fast in either
memory format), and the backward pass is the formula above: about 5x faster forward and
backward, 1.4x the whole NN2 step (``bench/bench_lrn.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable


def _window(channels: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """The (C, C, 1, 1) 0/1 weight whose 1x1 convolution sums each channel's window."""
    c = torch.arange(channels, device=like.device)
    offset = c[None, :] - c[:, None]            # [output channel, input channel]
    inside = (offset >= -(size // 2)) & (offset <= (size - 1) // 2)
    return inside.to(like.dtype).reshape(channels, channels, 1, 1)


class _LocalResponseNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor, size: int, alpha: float, beta: float,
                k: float) -> torch.Tensor:
        window = _window(x.shape[1], size, x)
        d = F.conv2d(x * x, window).mul_(alpha / size).add_(k)
        scale = d.pow(-beta)
        ctx.save_for_backward(x, d, scale, window)
        ctx.coefficient = 2 * alpha * beta / size
        return x * scale

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, d, scale, window = ctx.saved_tensors
        grad_scaled = grad * scale
        # The transposed weight sums over the windows that contain c (the same for an odd size).
        spread = F.conv2d(grad_scaled * x / d, window.transpose(0, 1))
        return grad_scaled - ctx.coefficient * x * spread, None, None, None, None


class LocalResponseNorm(nn.Module):
    """Drop-in for ``nn.LocalResponseNorm`` on (N, C, H, W) inputs: same arguments, same output.

    Computed in at least fp32, also under autocast, where torch's module returns fp32 too:
    squares of bf16 activations would lose most of the small ``alpha``-scaled term.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"LocalResponseNorm expects (N, C, H, W), got shape {tuple(x.shape)}")
        dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            return _LocalResponseNorm.apply(x.to(dtype), self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
