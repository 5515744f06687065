"""Test-time image degradations, applied to aligned crops before their features are taken.

FaceNet Table 4 measures how VAL at FAR 1e-3 falls with the JPEG quality and the pixel count of
the test images (the net trained on clean images):

- ``jpeg(images, quality)``: each crop encoded as a JPEG of that quality (1..100) and decoded
  again (OpenCV's encoder, 4:2:0 chroma subsampling as libjpeg's default).
- ``resolution(images, fraction)``: each crop shrunk to ``fraction`` of its pixels (area
  interpolation, aspect ratio kept, at least 1x1) and scaled back up bilinearly, so the net sees
  its usual input size with less detail. The paper states pixel counts of its 220x220 input
  (1,600 ... 65,536); ``fraction = pixels / 220**2`` carries a row over to any crop size, and a
  fraction of 1 or more leaves the crop as it is.
"""

from __future__ import annotations

import cv2
import numpy as np


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"need uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}")
    return images


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """Every RGB crop through a JPEG encode/decode round trip at ``quality``."""
    images = _check_images(images)
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality {quality} is not in 1..100")
    out = np.empty_like(images)
    for i, image in enumerate(images):
        ok, blob = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError(f"OpenCV could not JPEG-encode crop {i}")
        out[i] = cv2.cvtColor(cv2.imdecode(blob, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out


def reduced_size(height: int, width: int, fraction: float) -> tuple[int, int]:
    """(h, w) holding about ``fraction`` of the pixels of an ``height x width`` crop."""
    if fraction <= 0:
        raise ValueError(f"resolution fraction {fraction} must be positive")
    side = min(1.0, float(np.sqrt(fraction)))
    return max(1, round(height * side)), max(1, round(width * side))


def resolution(images: np.ndarray, fraction: float) -> np.ndarray:
    """Every crop down to ``fraction`` of its pixels and back up to its own size."""
    images = _check_images(images)
    height, width = images.shape[1:3]
    h, w = reduced_size(height, width, fraction)
    if (h, w) == (height, width):
        return images.copy()
    out = np.empty_like(images)
    for i, image in enumerate(images):
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return out
