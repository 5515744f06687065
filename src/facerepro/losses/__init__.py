"""Losses by the method name a run's config gives."""

from __future__ import annotations

from torch import nn

from facerepro.losses.softmax import SoftmaxLoss


def build(method: str, embedding_dim: int, num_classes: int) -> nn.Module:
    if method == "softmax":
        return SoftmaxLoss(embedding_dim, num_classes)
    raise KeyError(f"unknown method {method!r}; known: softmax")
