"""Similarity alignment of five landmarks to a crop template.

Coordinate convention (OpenCV's): a point ``(x, y)`` is in pixels with integer values at pixel
centres, so the top-left pixel's centre is ``(0, 0)`` and its outer corner ``(-0.5, -0.5)``.
Scaling a crop by ``s`` maps a point ``p`` to ``(p + 0.5) * s - 0.5``, which keeps the crop's
outer border fixed; :func:`get_template` applies this when a config asks for a scaled template.
Landmark order everywhere: left eye, right eye, nose, left mouth corner, right mouth corner
("left" is the image's left).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_SPHERE_112x96 = np.array([
    [30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366],
    [33.5493, 92.3655], [62.7299, 92.2041]])


@dataclass(frozen=True)
class Template:
    """A crop: its size, where the five landmarks must land, and how they are fitted.

    ``fit``: ``similarity`` (rotation, scale, shift per image: SphereFace's alignment); ``box``
    (scale and shift per image, no rotation: the face box a detector gives, FaceNet's tight
    crop); ``fixed`` (one transform for the whole dataset, placed from its mean landmarks: the
    centre-crop baseline without alignment).
    """

    name: str
    height: int
    width: int
    points: np.ndarray
    fit: str = "similarity"


_TEMPLATES = {
    "sphere_112x96": Template("sphere_112x96", 112, 96, _SPHERE_112x96),
    "sphere_112x112": Template("sphere_112x112", 112, 112, _SPHERE_112x96 + [8.0, 0.0]),
    "center_112x96": Template("center_112x96", 112, 96, _SPHERE_112x96, fit="fixed"),
    "box_112x96": Template("box_112x96", 112, 96, _SPHERE_112x96, fit="box"),
}
TEMPLATE_NAMES = tuple(_TEMPLATES)


def get_template(name: str, scale: float = 1.0) -> Template:
    """The named template with its crop and points scaled by ``scale`` (pixel-centre rule)."""
    if name not in _TEMPLATES:
        raise KeyError(f"unknown template {name!r}; known: {list(_TEMPLATES)}")
    t = _TEMPLATES[name]
    return Template(t.name, round(t.height * scale), round(t.width * scale),
                    (t.points + 0.5) * scale - 0.5, t.fit)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src to dst.

    Umeyama (1991), Eq. 40-42, with the reflection case excluded. Returns a 2x3 matrix M
    such that ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    var_s = (sc ** 2).sum() / len(src)
    scale = (d * sign).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def scale_shift(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares uniform scale and translation (no rotation) mapping src to dst, as a 2x3
    matrix: ``s = sum <p_i - p, q_i - q> / sum |p_i - p|^2``, ``t = q - s p`` (p, q the means)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc = src - mu_s
    scale = float(np.sum(sc * (dst - mu_d)) / np.sum(sc ** 2))
    m = np.zeros((2, 3))
    m[0, 0] = m[1, 1] = scale
    m[:, 2] = mu_d - scale * mu_s
    return m


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 2x3 affine matrix."""
    return np.asarray(points) @ m[:, :2].T + m[:, 2]


def warp(image: np.ndarray, m: np.ndarray, template: Template) -> np.ndarray:
    """Crop ``image`` to the template size through the 2x3 transform ``m``."""
    return cv2.warpAffine(image, m, (template.width, template.height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
