"""Backbones by name, and the one input normalisation every net shares."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facerepro.atomic import atomic_path
from facerepro.models.attributes import AttributeNet
from facerepro.models.compact import CompactNet
from facerepro.models.deepid import DeepID2Net, DeepID2PlusNet
from facerepro.models.facenet import NN1, InceptionNN2
from facerepro.models.lbp import LBPFeatures
from facerepro.models.pca import PixelPCA
from facerepro.models.sphere import DEPTH_UNITS, SphereNet
from facerepro.registries import Registry

# Every net is built as ``net(input_size, embedding_dim, **net_options)``.
NETS: Registry[Callable[..., nn.Module]] = Registry("net")
NETS.register("facenet_nn1")(NN1)
NETS.register("facenet_nn2")(InceptionNN2)
NETS.register("deepid2")(DeepID2Net)
NETS.register("deepid2plus")(DeepID2PlusNet)
NETS.register("deepid2_attributes")(AttributeNet)
NETS.register("compact")(CompactNet)
NETS.register("pixels_pca")(PixelPCA)
NETS.register("lbp")(LBPFeatures)
for _depth in DEPTH_UNITS:
    NETS.register(f"sphere{_depth}")(partial(SphereNet, _depth))


def build(net: str, input_size: tuple[int, int], embedding_dim: int, **options: Any
          ) -> nn.Module:
    """A backbone from its config name (a key of :data:`NETS`) and its ``net_options``."""
    if "maps" in options:       # YAML gives a list; the nets take a fixed-length tuple
        options = {**options, "maps": tuple(options["maps"])}
    return NETS[net](input_size, embedding_dim, **options)


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


def save(model: nn.Module, net: str, input_size: tuple[int, int], dest: str | Path,
         options: dict | None = None) -> None:
    """Weights plus what :func:`load` needs to rebuild the net, written atomically."""
    blob = {"net": net, "input_size": list(input_size), "options": options or {},
            "embedding_dim": model.embedding_dim, "state_dict": model.state_dict()}
    with atomic_path(dest) as tmp:
        torch.save(blob, tmp)


def load(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    blob = torch.load(path, map_location=device, weights_only=True)
    model = build(blob["net"], tuple(blob["input_size"]), blob["embedding_dim"],
                  **blob["options"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()
