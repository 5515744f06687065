"""Embeddings of an aligned shard: any named layers, of the original and the mirrored face.

SphereFace and CLMLE test on ``[f(x), f(flip(x))]`` (``flip_merge: concat``); ``sum`` adds the
two, ``none`` keeps the original only. DeepID2+ reads several layers (FC-1..FC-4) at once:
each requested module's output is captured by a forward hook. The npz stores every layer as
``layer.<name>``, the first (or the net's output) also as ``features``, and which image each
row is, so protocols can look rows up by ``image_id``.

A :class:`View` names which images and how they are shown to the net: a subset (``all`` or a
split such as ``holdout``), optionally another crop template than the run's own (FaceNet's
center crop vs aligned test faces) and a test-time degradation (FaceNet Table 4). Its ``name``
(``all``, ``all~center_112x96``, ``all~jpeg10``, ``all~res0.033``) is the features file's name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facerepro import degrade, models
from facerepro.align.shards import read_shard
from facerepro.atomic import atomic_path

OUTPUT = "output"      # the name of the net's own output among the layers
_JPEG, _RES = re.compile(r"jpeg(\d+)"), re.compile(r"res(\d*\.?\d+)")


@dataclass(frozen=True)
class View:
    """Which images of an evaluation set (``subset``: all or a split), through which crop
    ``template`` (None: the run's own), degraded how (None: not at all)."""

    subset: str = "all"
    template: str | None = None
    jpeg_quality: int | None = None
    resolution: float | None = None

    @property
    def name(self) -> str:
        parts = [self.subset]
        if self.template is not None:
            parts.append(self.template)
        if self.jpeg_quality is not None:
            parts.append(f"jpeg{self.jpeg_quality}")
        if self.resolution is not None:
            parts.append(f"res{self.resolution:g}")
        return "~".join(parts)

    @classmethod
    def parse(cls, name: str) -> View:
        subset, *tokens = name.split("~")
        fields: dict = {}
        for token in tokens:
            if m := _JPEG.fullmatch(token):
                fields["jpeg_quality"] = int(m.group(1))
            elif m := _RES.fullmatch(token):
                fields["resolution"] = float(m.group(1))
            else:
                fields["template"] = token
        view = cls(subset, **fields)
        if view.name != name:
            raise ValueError(f"{name!r} is not a features view name (did you mean "
                             f"{view.name!r}?)")
        return view

    def show(self, images: np.ndarray) -> np.ndarray:
        """The images as this view degrades them."""
        if self.jpeg_quality is not None:
            images = degrade.jpeg(images, self.jpeg_quality)
        if self.resolution is not None:
            images = degrade.resolution(images, self.resolution)
        return images


def _merge(a: torch.Tensor, b: torch.Tensor, flip_merge: str) -> torch.Tensor:
    if flip_merge == "concat":
        return torch.cat([a, b], dim=1)
    if flip_merge == "sum":
        return a + b
    return a


@torch.no_grad()
def embed(model: nn.Module, images: np.ndarray, layers: Sequence[str] = (),
          flip_merge: str = "concat", batch_size: int = 256,
          device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """{layer: (N, d') float32} for each uint8 (N, H, W, 3) image; ``()`` = the net's output."""
    if flip_merge not in ("concat", "sum", "none"):
        raise ValueError(f"flip_merge must be concat, sum or none, not {flip_merge!r}")
    names = list(layers) or [OUTPUT]
    captured: dict[str, torch.Tensor] = {}
    hooks = []
    for name in names:
        if name == OUTPUT:
            continue
        try:
            module = model.get_submodule(name)
        except AttributeError as exc:
            known = [n for n, _ in model.named_modules() if n]
            raise KeyError(f"the net has no layer {name!r}; named layers: {known}") from exc
        hooks.append(module.register_forward_hook(
            lambda _m, _i, out, name=name: captured.__setitem__(name, out.flatten(1))))

    def forward(x: torch.Tensor) -> dict[str, torch.Tensor]:
        captured[OUTPUT] = model(x).flatten(1)
        return {name: captured[name].float().cpu() for name in names}

    out: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    try:
        for start in range(0, len(images), batch_size):
            x = models.to_input(images[start:start + batch_size], device)
            plain = forward(x)
            mirrored = forward(x.flip(3)) if flip_merge != "none" else plain
            for name in names:
                out[name].append(_merge(plain[name], mirrored[name], flip_merge))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(parts).numpy() for name, parts in out.items()}


def extract(model_path: str | Path, shard_dir: str | Path, dest: str | Path,
            view: View | None = None, layers: Sequence[str] = (), flip_merge: str = "concat",
            batch_size: int = 256, device: torch.device | str = "cpu") -> None:
    """Features of the shard's images that ``view`` selects (default: all), as it shows them."""
    view = view or View()
    model = models.load(model_path, device)
    images, index = read_shard(shard_dir)
    if view.subset != "all":
        index = index[index["split"] == view.subset]
        if index.empty:
            raise ValueError(f"{shard_dir} has no images of split {view.subset!r}")
        images = images[index.index.to_numpy()]
    feats = embed(model, view.show(images), layers, flip_merge, batch_size, device)
    first = next(iter(feats.values()))
    with atomic_path(dest) as tmp:
        np.savez(tmp, features=first, image_id=index["image_id"].to_numpy(dtype=str),
                 identity=index["identity"].to_numpy(dtype=str),
                 **{f"layer.{name}": value for name, value in feats.items()})


def load(path: str | Path, layer: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, image_id, identity) of a features file; ``layer`` picks a named layer."""
    with np.load(path) as data:
        key = "features" if layer is None else f"layer.{layer}"
        if key not in data:
            layers = [k.removeprefix("layer.") for k in data.files if k.startswith("layer.")]
            raise KeyError(f"{path} has no layer {layer!r}; it has {layers}")
        return data[key], data["image_id"], data["identity"]
