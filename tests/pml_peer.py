"""Our classifier losses against pytorch-metric-learning's on the same input and class weights."""

import torch
from torch import nn


def assert_same_as_peer(loss: nn.Module, peer: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                        rtol: float, atol: float, grad_rtol: float | None = None) -> torch.Tensor:
    """Values and gradients (inputs and class weights) agree; returns the peer's value.

    PML keeps W as (embedding_size, num_classes), ours as (num_classes, embedding_size), and
    averages the per-sample losses as ours do.
    """
    peer.W.data = loss.weight.detach().t().clone()
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, theirs = loss(x1, labels), peer(x2, labels)
    ours.backward()
    theirs.backward()
    assert peer.W.dtype == torch.float64
    grad_rtol = rtol if grad_rtol is None else grad_rtol
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=grad_rtol, atol=atol)
    torch.testing.assert_close(loss.weight.grad, peer.W.grad.t(), rtol=grad_rtol, atol=atol)
    return theirs
