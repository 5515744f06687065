"""The hand-written LRN: numerically checked gradients, and torch's module as the reference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from facerepro.models.local_response_norm import LocalResponseNorm


def _input(shape: tuple[int, ...], dtype: torch.dtype = torch.float64, seed: int = 0):
    # Large activations so that the alpha-scaled window sum moves d well away from k.
    generator = torch.Generator().manual_seed(seed)
    return (30 * torch.randn(shape, generator=generator, dtype=dtype)).requires_grad_()


@pytest.mark.parametrize("size", [1, 4, 5])
def test_gradient_matches_finite_differences(size):
    lrn = LocalResponseNorm(size, alpha=1e-2, beta=0.75, k=2.0)
    assert torch.autograd.gradcheck(lrn, (_input((2, 7, 3, 4)),))


@pytest.mark.parametrize(("size", "channels"), [(5, 7), (4, 6), (5, 3), (3, 1)])
def test_output_and_gradient_equal_torchs_module(size, channels):
    settings = {"size": size, "alpha": 1e-3, "beta": 0.6, "k": 1.5}
    ours, torchs = LocalResponseNorm(**settings), nn.LocalResponseNorm(**settings)
    x = _input((3, channels, 5, 4))
    upstream = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1))
    y_ours, y_torch = ours(x), torchs(x)
    grad_ours, = torch.autograd.grad(y_ours, x, upstream)
    grad_torch, = torch.autograd.grad(y_torch, x, upstream)
    torch.testing.assert_close(y_ours, y_torch, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_ours, grad_torch, rtol=1e-10, atol=1e-12)


def test_channels_last_fp32_as_facenet_trains():
    x = _input((8, 16, 14, 12), torch.float32).detach().contiguous(
        memory_format=torch.channels_last).requires_grad_()
    y = LocalResponseNorm(5)(x)
    reference = nn.LocalResponseNorm(5)(x.detach().double())
    torch.testing.assert_close(y.double(), reference, rtol=1e-6, atol=1e-5)
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_under_autocast_computes_in_fp32_and_returns_fp32_like_torchs_module():
    x = _input((2, 8, 4, 4), torch.float32).detach().bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, torchs = LocalResponseNorm(5)(x), nn.LocalResponseNorm(5)(x)
    assert y.dtype == torchs.dtype == torch.float32
    # torch's squares in bf16 under autocast (0.02 off here); ours matches the fp32 computation.
    torch.testing.assert_close(y, nn.LocalResponseNorm(5)(x.float()), rtol=1e-6, atol=1e-5)


def test_refuses_an_input_that_is_not_a_batch_of_maps():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\).*\(2, 8\)"):
        LocalResponseNorm(5)(torch.ones(2, 8))
