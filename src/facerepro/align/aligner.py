"""Align every kept image of a dataset part to a template and store the crops as a shard.

The shard's index carries, per image, where its landmarks came from (``source``, ``score``,
``faces``, ``fallback``, as in :mod:`facerepro.align.landmarks`) and the landmarks mapped into
the crop (``x1, y1, ..., x5, y5``), so a report can count landmark sources per shard.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from facerepro.align import transform
from facerepro.align.images import read_rgb
from facerepro.align.landmarks import BOX_COLUMNS, POINT_COLUMNS
from facerepro.align.shards import write_shard
from facerepro.atomic import atomic_path

INDEX_COLUMNS = ["image_id", "identity", "split", "source", "score", "faces", "fallback",
                 *POINT_COLUMNS]
CHUNK = 512         # images decoded and warped per batch of thread-pool work


def transforms_for(landmarks: np.ndarray, template: transform.Template,
                   boxes: np.ndarray | None = None) -> np.ndarray:
    """(N, 2, 3) transforms: one per image (similarity, box fit or detector box), or the
    mean-landmark one for a fixed centre crop."""
    if template.fit == "detection":
        if boxes is None or np.isnan(boxes).any():
            raise ValueError(f"template {template.name} crops the detector's face box, which "
                             f"dataset landmarks do not have; set align.landmarks: mtcnn")
        return np.stack([transform.box_crop(b, template) for b in boxes])
    if template.fit == "fixed":
        fixed = transform.umeyama(landmarks.mean(0), template.points)
        return np.repeat(fixed[None], len(landmarks), axis=0)
    fit = transform.scale_shift if template.fit == "box" else transform.umeyama
    return fit(landmarks, template.points)


def _ordered(landmarks: pd.DataFrame, image_ids: pd.Series) -> pd.DataFrame:
    """The landmark rows of ``image_ids``, in that order."""
    table = landmarks.set_index("image_id")
    missing = ~image_ids.isin(table.index)
    if missing.any():
        raise KeyError(f"the landmark table lacks {int(missing.sum())} kept images (e.g. "
                       f"{image_ids[missing].iloc[0]}); delete it and re-run the landmarks rule")
    return table.loc[image_ids.to_numpy()].reset_index()


def align_dataset(root: str | Path, manifest: pd.DataFrame, landmarks: pd.DataFrame,
                  template: transform.Template, out_dir: str | Path, workers: int = 1,
                  drop: Collection[str] = ()) -> pd.DataFrame:
    """Crop every kept image but those of ``drop`` (the face policy's,
    :mod:`facerepro.align.face_policy`); returns (and writes) the index with the mapped
    landmarks.

    Decoding and warping run on ``workers`` threads (OpenCV releases the GIL for both).
    """
    root = Path(root)
    kept = manifest[manifest["status"] == "kept"].reset_index(drop=True)
    rows = _ordered(landmarks, kept["image_id"])
    left = ~kept["image_id"].astype(str).isin(set(drop)).to_numpy()
    if not left.any():
        raise ValueError(f"align.no_face / align.multi_face drop all {len(kept)} images under "
                         f"{root}; set them to fallback / centre_weighted, or check the images")
    kept, rows = kept[left].reset_index(drop=True), rows[left].reset_index(drop=True)
    points = rows[POINT_COLUMNS].to_numpy(np.float64).reshape(-1, 5, 2)
    mats = transforms_for(points, template, rows[BOX_COLUMNS].to_numpy(np.float64))
    mapped = np.einsum("nij,nkj->nki", mats[:, :, :2], points) + mats[:, None, :, 2]

    def crop(item: tuple[str, np.ndarray]) -> np.ndarray:
        return transform.warp(read_rgb(root / item[0]), item[1], template)

    def crops() -> Iterator[np.ndarray]:
        items = list(zip(kept["path"], mats, strict=True))
        with ThreadPoolExecutor(workers) as pool:
            for start in range(0, len(items), CHUNK):
                yield from pool.map(crop, items[start:start + CHUNK])

    index = kept[["image_id", "identity", "split"]].copy()
    for column in ("source", "score", "faces", "fallback"):
        index[column] = rows[column]        # both on 0..n-1; keeps faces' nullable Int64
    index[POINT_COLUMNS] = mapped.reshape(len(mapped), 10)
    write_shard(out_dir, crops(), index[INDEX_COLUMNS], template.height, template.width)
    return index[INDEX_COLUMNS]


def qa_figure(images: np.ndarray, index: pd.DataFrame, template: transform.Template,
              dest: str | Path, count: int = 32, seed: int = 0) -> None:
    """A grid of aligned faces with their mapped landmarks (red) and the template's (green);
    faces aligned from fallback landmarks (MTCNN found none) are framed in orange."""
    rows = np.sort(np.random.default_rng(seed).permutation(len(images))[:count])
    cols = 8
    fig, axes = plt.subplots(int(np.ceil(len(rows) / cols)), cols,
                             figsize=(cols * 1.1, np.ceil(len(rows) / cols) * 1.3), dpi=100,
                             squeeze=False)
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, r in zip(np.ravel(axes), rows, strict=False):
        ax.imshow(images[r])
        xy = index.loc[r, POINT_COLUMNS].to_numpy(float).reshape(5, 2)
        ax.scatter(xy[:, 0], xy[:, 1], s=4, c="red")
        if template.points is not None:
            ax.scatter(template.points[:, 0], template.points[:, 1], s=4, c="lime", marker="x")
        if index.loc[r, "fallback"]:
            ax.add_patch(plt.Rectangle((-0.5, -0.5), template.width, template.height,
                                       fill=False, edgecolor="orange", linewidth=3))
    fig.tight_layout(pad=0.2)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
