"""Test-time image degradations, applied to aligned crops before their features are taken.

All work on uint8 (N, H, W, 3) RGB crops and return new arrays (the input is never changed).

FaceNet Table 4 measures how VAL at FAR 1e-3 falls with the JPEG quality and the pixel count of
the test images (the net trained on clean images):

- ``jpeg(images, quality)``: each crop encoded as a JPEG of that quality (1..100) and decoded
  again (OpenCV's encoder, 4:2:0 chroma subsampling as libjpeg's default).
- ``resolution(images, fraction)``: each crop shrunk to ``fraction`` of its pixels (area
  interpolation, aspect ratio kept, at least 1x1) and scaled back up bilinearly, so the net sees
  its usual input size with less detail. The paper states pixel counts of its 220x220 input
  (1,600 ... 65,536); ``fraction = pixels / 220**2`` carries a row over to any crop size, and a
  fraction of 1 or more leaves the crop as it is.

DeepID2+ Sec. 7 (Figs. 15-17) measures verification under occlusion, the nets and Joint
Bayesian trained on unoccluded faces; the occluder is black (0):

- ``occlude_bottom(images, fraction)`` blacks the bottom ``round(fraction * H)`` rows (the
  paper: 10% ... 70% of the face, from the bottom up).
- ``occlude_blocks(images, size, seed)`` blacks one random square per image whose side is given
  in pixels of the paper's 55x47 face (10 ... 70) and scaled by ``H / 55``.

Rounding is half up (16.5 -> 17).

OpenCV is imported by the two functions that call it: :mod:`facerepro.views`, which the rules
and every features and evaluate job import, would otherwise load it for nothing.
"""

from __future__ import annotations

import numpy as np


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"need uint8 (N, H, W, 3) images, got {images.dtype} {images.shape}")
    return images


def _round_half_up(value: float) -> int:
    # Rounding to 9 decimals first absorbs float noise (0.35 * 20 = 7.000000000000001) so that
    # exact halves such as 0.1 * 55 = 5.5 round up the same way on every platform.
    return int(np.floor(np.round(value, 9) + 0.5))


def jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    """Every RGB crop through a JPEG encode/decode round trip at ``quality``."""
    images = _check_images(images)
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality {quality} is not in 1..100")
    import cv2

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
    import cv2

    out = np.empty_like(images)
    for i, image in enumerate(images):
        small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return out


def occlude_bottom(images: np.ndarray, fraction: float) -> np.ndarray:
    """Copy of ``images`` with the bottom ``round(fraction * H)`` rows black (half rounds up)."""
    images = _check_images(images)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"occluded fraction must lie in [0, 1], got {fraction}")
    height = images.shape[1]
    rows = _round_half_up(fraction * height)
    out = images.copy()
    out[:, height - rows:] = 0
    return out


def occlude_blocks(images: np.ndarray, size: int, seed: int,
                   reference_height: int = 55) -> np.ndarray:
    """Copy of ``images`` with one random black square per image, deterministic from ``seed``.

    ``size`` is the side in pixels of a ``reference_height``-tall face (the paper's 55x47); the
    side used is ``round(size * H / reference_height)`` (half up, at least 1). The block lies
    fully inside the image: along an axis shorter than the side it spans the whole axis (a
    "60x60" block on a 55x47 face covers 55x47). One ``numpy.random.Generator`` seeded with
    ``seed`` draws all top rows, then all left columns, uniformly over the positions that fit.
    """
    images = _check_images(images)
    if size <= 0 or reference_height <= 0:
        raise ValueError(f"block size and reference_height must be positive, got {size}, "
                         f"{reference_height}")
    n, height, width = images.shape[:3]
    side = max(1, _round_half_up(size * height / reference_height))
    block_h, block_w = min(side, height), min(side, width)
    rng = np.random.default_rng(seed)
    top = rng.integers(0, height - block_h + 1, size=n)
    left = rng.integers(0, width - block_w + 1, size=n)
    rows = np.arange(height)[None, :] - top[:, None]
    cols = np.arange(width)[None, :] - left[:, None]
    inside = (((rows >= 0) & (rows < block_h))[:, :, None]
              & ((cols >= 0) & (cols < block_w))[:, None, :])
    out = images.copy()
    out[inside] = 0
    return out
