"""Decoding a dataset image for alignment, with an error that says how to recover."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; the manifest has already kept only images that decode."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} cannot be decoded although the manifest kept it; "
                         f"delete the manifest to re-clean the dataset")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
