"""Embeddings of an aligned shard: the original and the mirrored face, concatenated.

SphereFace and CLMLE test on ``[f(x), f(flip(x))]``; the npz also keeps which image each row
is, so protocols can look rows up by ``image_id``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facerepro import models
from facerepro.align.shards import read_shard
from facerepro.atomic import atomic_path


@torch.no_grad()
def embed(model: torch.nn.Module, images: np.ndarray, batch_size: int = 256,
          device: torch.device | str = "cpu") -> np.ndarray:
    """(N, 2 * d) float32: ``f(x)`` then ``f(flip(x))`` for each uint8 (N, H, W, 3) image."""
    out = []
    for start in range(0, len(images), batch_size):
        x = models.to_input(images[start:start + batch_size], device)
        out.append(torch.cat([model(x), model(x.flip(3))], dim=1).float().cpu())
    return torch.cat(out).numpy()


def extract(model_path: str | Path, shard_dir: str | Path, dest: str | Path,
            split: str | None = None, batch_size: int = 256,
            device: torch.device | str = "cpu") -> None:
    """Features of every image of the shard, or only of those in ``split``."""
    model = models.load(model_path, device)
    images, index = read_shard(shard_dir)
    if split is not None:
        index = index[index["split"] == split]
        if index.empty:
            raise ValueError(f"{shard_dir} has no images of split {split!r}")
        images = images[index.index.to_numpy()]
    feats = embed(model, images, batch_size, device)
    with atomic_path(dest) as tmp:
        np.savez(tmp, features=feats, image_id=index["image_id"].to_numpy(dtype=str),
                 identity=index["identity"].to_numpy(dtype=str))


def load(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, image_id, identity) of a features file."""
    with np.load(path) as data:
        return data["features"], data["image_id"], data["identity"]
