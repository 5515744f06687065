"""Embeddings of an aligned shard: any named layers, of the original and the mirrored face.

SphereFace and CLMLE test on ``[f(x), f(flip(x))]`` (``flip_merge: concat``); ``sum`` adds the
two, ``none`` keeps the original only. DeepID2+ reads several layers (FC-1..FC-4) at once:
each requested module's output is captured by a forward hook. The npz stores the net's output
as ``features``, every requested layer as ``layer.<name>``, how the flip was merged, and which
image each row is, so protocols can look rows up by ``image_id`` (a ``powerlaw`` view: and its
role, training or test face).

Which images, shown how, is a :class:`~facerepro.views.View`; its name is the features file's.

Reading a features file (:func:`load`, :func:`layers`) takes numpy only: torch and the nets are
imported by the functions that run a net, so an evaluate job never loads them.

Features are computed in fp32 whatever ``precision`` the run trained in: its weights are fp32
either way, so fp32 gives the net's own output on every machine, where bf16 autocast would make
the features (and every metric after them) depend on whether the machine has native bf16, for
a small gain (measured in config/README.md, "Training speed on the CPU").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facerepro.align.shards import read_shard
from facerepro.atomic import atomic_path
from facerepro.data.imbalance import POWER_LAW, power_law_faces
from facerepro.views import View

if TYPE_CHECKING:
    import torch
    from torch import nn

OUTPUT = "output"      # the name of the net's own output among the layers


def _merge(a: torch.Tensor, b: torch.Tensor, flip_merge: str) -> torch.Tensor:
    import torch

    if flip_merge == "concat":
        return torch.cat([a, b], dim=1)
    if flip_merge == "sum":
        return a + b
    return a


def embed(model: nn.Module, images: np.ndarray, layers: Sequence[str] = (),
          flip_merge: str = "concat", batch_size: int = 256,
          device: torch.device | str = "cpu", rows: np.ndarray | None = None
          ) -> dict[str, np.ndarray]:
    """{layer: (N, d') float32} for each uint8 (N, H, W, 3) image; ``()`` = the net's output.

    ``rows`` picks images (a memory-mapped shard's training rows, say) batch by batch, so the
    selection is never copied whole. The net runs in eval mode and is left in the mode it had:
    training calls this to score or cluster its own features mid-run. No gradients are kept.
    """
    import torch

    from facerepro import models

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

    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    out: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                x = models.to_input(images[rows[start:start + batch_size]], device)
                plain = forward(x)
                mirrored = forward(x.flip(3)) if flip_merge != "none" else plain
                for name in names:
                    out[name].append(_merge(plain[name], mirrored[name], flip_merge))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(parts).numpy() for name, parts in out.items()}


def extract(model_path: str | Path, shard_dir: str | Path, dest: str | Path,
            view: View | None = None, layers: Sequence[str] = (), flip_merge: str = "concat",
            batch_size: int = 256, device: torch.device | str = "cpu",
            imbalance: dict | None = None) -> None:
    """Features of the shard's images that ``view`` selects (default: all), as it shows them:
    the net's output as ``features``, each named layer as ``layer.<name>``. The ``powerlaw``
    view takes the run's ``imbalance`` settings and also stores each face's ``role``."""
    from facerepro import models

    view = view or View()
    model = models.load(model_path, device)
    images, index = read_shard(shard_dir)
    extra = {}
    if view.subset == POWER_LAW:
        if imbalance is None:
            raise ValueError(f"the {POWER_LAW!r} view is a run's power-law classes: only a run "
                             f"with an `imbalance` setting has one")
        index = power_law_faces(index, imbalance)
        extra["role"] = index["role"].to_numpy(dtype=str)
    elif view.subset != "all":
        index = index[index["split"] == view.subset]
        if index.empty:
            raise ValueError(f"{shard_dir} has no images of split {view.subset!r}")
    if view.subset != "all":
        images = images[index.index.to_numpy()]
    feats = embed(model, view.show(images), [OUTPUT, *layers], flip_merge, batch_size, device)
    with atomic_path(dest) as tmp:
        np.savez(tmp, features=feats.pop(OUTPUT), image_id=index["image_id"].to_numpy(dtype=str),
                 identity=index["identity"].to_numpy(dtype=str), flip_merge=flip_merge,
                 **extra, **{f"layer.{name}": value for name, value in feats.items()})


def layers(path: str | Path) -> list[str]:
    """The named layers a features file holds besides the net's output (``[]``: none)."""
    with np.load(path) as data:
        return [k.removeprefix("layer.") for k in data.files if k.startswith("layer.")]


def load(path: str | Path, layer: str | None = None, original_only: bool = False
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, image_id, identity) of a features file; ``layer`` picks a named layer.

    ``original_only`` keeps the unflipped face's half of ``concat`` features: analyses of
    single activations (sparsity, selectiveness) must not count a face twice.
    """
    with np.load(path) as data:
        key = "features" if layer is None else f"layer.{layer}"
        if key not in data:
            raise KeyError(f"{path} has no layer {layer!r}; it has {layers(path)}")
        x = data[key]
        if original_only:
            merge = str(data["flip_merge"])
            if merge == "sum":
                raise ValueError(f"{path} holds original + flipped sums (flip_merge: sum); "
                                 f"set the run's flip_merge to concat or none for this analysis")
            if merge == "concat":
                x = x[:, :x.shape[1] // 2]
        return x, data["image_id"], data["identity"]


def roles(path: str | Path) -> np.ndarray:
    """Each face's role (train / test) in a ``powerlaw`` view's features file."""
    with np.load(path) as data:
        if "role" not in data:
            raise KeyError(f"{path} holds no roles: it is not a {POWER_LAW!r} view's features")
        return data["role"]
