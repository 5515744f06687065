"""Align every kept image of a dataset part to a template and store the crops as a shard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from facerepro.align import transform
from facerepro.align.landmarks import dataset_landmarks
from facerepro.align.shards import write_shard
from facerepro.atomic import atomic_path

INDEX_COLUMNS = ["image_id", "identity", "split", "source", "score", "fallback"]


def transforms_for(landmarks: np.ndarray, template: transform.Template) -> np.ndarray:
    """(N, 2, 3) transforms: one per image (similarity or box fit), or the mean-landmark one for
    a fixed centre crop."""
    if template.fit == "fixed":
        fixed = transform.umeyama(landmarks.mean(0), template.points)
        return np.repeat(fixed[None], len(landmarks), axis=0)
    fit = transform.scale_shift if template.fit == "box" else transform.umeyama
    return np.stack([fit(p, template.points) for p in landmarks])


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} cannot be decoded although the manifest kept it; "
                         f"delete the manifest to re-clean the dataset")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def align_dataset(root: str | Path, manifest: pd.DataFrame, layout: str,
                  template: transform.Template, out_dir: str | Path) -> pd.DataFrame:
    """Crop every kept image; returns (and writes) the index with the mapped landmarks."""
    root = Path(root)
    kept = manifest[manifest["status"] == "kept"].reset_index(drop=True)
    landmarks = dataset_landmarks(root, layout, kept["path"])
    mats = transforms_for(landmarks, template)
    mapped = np.einsum("nij,nkj->nki", mats[:, :, :2], landmarks) + mats[:, None, :, 2]

    def crops() -> Iterator[np.ndarray]:
        for path, m in zip(kept["path"], mats, strict=True):
            yield transform.warp(_read_rgb(root / path), m, template)

    index = kept[["image_id", "identity", "split"]].copy()
    index["source"] = "dataset"
    index["score"] = 1.0
    index["fallback"] = False
    for k in range(5):
        index[f"x{k + 1}"] = mapped[:, k, 0]
        index[f"y{k + 1}"] = mapped[:, k, 1]
    write_shard(out_dir, crops(), index, template.height, template.width)
    return index


def qa_figure(images: np.ndarray, index: pd.DataFrame, template: transform.Template,
              dest: str | Path, count: int = 32, seed: int = 0) -> None:
    """A grid of aligned faces with their mapped landmarks (red) and the template's (green)."""
    rows = np.sort(np.random.default_rng(seed).permutation(len(images))[:count])
    cols = 8
    fig, axes = plt.subplots(int(np.ceil(len(rows) / cols)), cols,
                             figsize=(cols * 1.1, np.ceil(len(rows) / cols) * 1.3), dpi=100)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, r in zip(np.ravel(axes), rows, strict=False):
        ax.imshow(images[r])
        xs = index.loc[r, [f"x{k}" for k in range(1, 6)]].to_numpy(float)
        ys = index.loc[r, [f"y{k}" for k in range(1, 6)]].to_numpy(float)
        ax.scatter(xs, ys, s=4, c="red")
        ax.scatter(template.points[:, 0], template.points[:, 1], s=4, c="lime", marker="x")
    fig.tight_layout(pad=0.2)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
