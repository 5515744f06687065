"""Backbones by name, and the one input normalisation every net shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from facerepro.atomic import atomic_path
from facerepro.models.pca import PixelPCA
from facerepro.models.sphere import SphereNet


def build(net: str, input_size: tuple[int, int], embedding_dim: int) -> nn.Module:
    """A backbone from its config name: ``sphere4``, ``sphere10``, ..., ``pixels_pca``."""
    if net.startswith("sphere") and net[6:].isdigit():
        return SphereNet(int(net[6:]), input_size, embedding_dim)
    if net == "pixels_pca":
        return PixelPCA(input_size, embedding_dim)
    raise KeyError(f"unknown net {net!r}; known: sphere4/10/20/36/64, pixels_pca")


def to_input(batch: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (B, H, W, 3) RGB -> float (B, 3, H, W) as ``(x - 127.5) / 128`` (SphereFace).

    Normalised in numpy, not torch: the training loader calls this on its own thread, and torch
    ops there start a second OpenMP pool that competes with the training step for the cores.
    """
    x = np.array(batch, np.float32)            # a copy: normalised in place below
    x -= 127.5
    x /= 128.0
    # contiguous NCHW, so the `channels_last` switch is what decides the memory format
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)


def save(model: nn.Module, net: str, input_size: tuple[int, int], dest: str | Path) -> None:
    """Weights plus what :func:`load` needs to rebuild the net, written atomically."""
    blob = {"net": net, "input_size": list(input_size),
            "embedding_dim": model.embedding_dim, "state_dict": model.state_dict()}
    with atomic_path(dest) as tmp:
        torch.save(blob, tmp)


def load(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    blob = torch.load(path, map_location=device, weights_only=True)
    model = build(blob["net"], tuple(blob["input_size"]), blob["embedding_dim"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()
