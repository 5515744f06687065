"""Weight initialisation shared by the nets trained from scratch."""

from __future__ import annotations

from torch import nn


def xavier_(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every convolution and linear layer, in place.

    SphereFace's released nets use Xavier; it also suits the tanh-like units of Compact int32,
    keeping their pre-activations out of saturation at the start.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
