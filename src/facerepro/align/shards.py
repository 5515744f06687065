"""Aligned-face store: one uint8 (N, H, W, 3) ``images.npy`` plus an ``index.parquet``.

The array is written through a memory map into a temporary file and renamed when complete;
readers memory-map it, so a training process touches only the rows it samples.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from facerepro.atomic import atomic_path

IMAGES = "images.npy"
INDEX = "index.parquet"


def write_shard(out_dir: str | Path, images: Iterable[np.ndarray], index: pd.DataFrame,
                height: int, width: int) -> None:
    """Write ``len(index)`` RGB crops of ``height`` x ``width`` in index order, atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{IMAGES}.tmp{os.getpid()}.npy"
    try:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                          shape=(len(index), height, width, 3))
        count = 0
        for i, image in enumerate(images):
            if i >= len(index):
                raise ValueError(f"{out_dir}: more images than the {len(index)} index rows")
            array[i] = image
            count += 1
        if count != len(index):
            raise ValueError(f"{out_dir}: {count} images for {len(index)} index rows")
        array.flush()
        del array
        os.replace(tmp, out_dir / IMAGES)
    finally:
        tmp.unlink(missing_ok=True)     # a failed write leaves nothing behind
    with atomic_path(out_dir / INDEX) as tmp_index:
        index.reset_index(drop=True).to_parquet(tmp_index, index=False)


def read_shard(out_dir: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    """The memory-mapped images and their index; row i of one is row i of the other."""
    out_dir = Path(out_dir)
    images = np.load(out_dir / IMAGES, mmap_mode="r")
    index = pd.read_parquet(out_dir / INDEX)
    if len(images) != len(index):
        raise ValueError(f"{out_dir}: {len(images)} images but {len(index)} index rows; "
                         f"delete the directory and re-run the align rule")
    return images, index
