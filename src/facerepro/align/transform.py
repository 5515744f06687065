"""Similarity alignment of five landmarks to a crop template, and the templates.

Coordinate convention (OpenCV's): a point ``(x, y)`` is in pixels with integer values at pixel
centres, so the top-left pixel's centre is ``(0, 0)`` and its outer corner ``(-0.5, -0.5)``.
Scaling a crop by ``s`` maps a point ``p`` to ``(p + 0.5) * s - 0.5``, which keeps the crop's
outer border fixed; :func:`get_template` applies this when a config asks for a scaled template.
Landmark order everywhere: left eye, right eye, nose, left mouth corner, right mouth corner
("left" is the image's left).

Templates (names as in the config):

- ``sphere_112x96`` / ``sphere_112x112``: SphereFace's five points (docs/DESIGN.md), similarity fit.
- ``center_112x96``: one fixed crop for the whole dataset, placed from its mean landmarks.
- ``box_112x96``: scale and shift fitted to the landmarks, no rotation (a tight face box).
- ``facenet_160``: FaceNet's crop, no landmarks: the detector's box, made square about its
  centre, grown by ``margin`` times its side (config ``align.box_margin``; 0.25 = the box fills
  128 of the 160 px, facenet-pytorch's default margin of 32) and resized, zero outside the image.
- ``deepid_*``: DeepID2+ face regions. The papers show their 25 regions only as a picture
  (DeepID2 Fig. 2: rectangles 55x47 and squares 47x47 at several positions and scales), so
  these are windows of the similarity-aligned 112x96 SphereFace frame, fixed here:
  ``deepid_55x47`` the whole face (the input of the DeepID2+ net and of CLMLE on CelebA;
  the 112x96 frame at 55/112 of its size); ``deepid_face_47x47`` the whole face as a 112 px
  square (more context at the sides); ``deepid_eyes_47x47``, ``deepid_nose_47x47`` and
  ``deepid_mouth_47x47`` 56 px squares centred on the eye midpoint, the nose tip and the mouth
  midpoint.
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
    """A crop: its size, where the five landmarks must land, and how the crop is fitted.

    ``fit``: ``similarity`` (rotation, scale, shift per image: SphereFace's alignment); ``box``
    (scale and shift per image, no rotation: a tight face box from the landmarks); ``fixed``
    (one transform for the whole dataset, placed from its mean landmarks: the centre-crop
    baseline without alignment); ``detection`` (the detector's box plus ``margin``, no
    landmarks: ``points`` is None).
    """

    name: str
    height: int
    width: int
    points: np.ndarray | None
    fit: str = "similarity"
    margin: float = 0.0


def _window(centre: np.ndarray, height: float, out_h: int, out_w: int) -> np.ndarray:
    """The 112x96 frame's points in an ``out_h`` x ``out_w`` crop of the frame's window of
    ``height`` px centred on ``centre`` (pixel-centre coordinates), same scale on both axes."""
    scale = out_h / height
    corner = centre + 0.5 - np.array([out_w, out_h]) / scale / 2      # window's outer corner
    return (_SPHERE_112x96 + 0.5 - corner) * scale - 0.5


_FRAME_CENTRE = np.array([47.5, 55.5])          # the 112x96 frame's centre
_EYES, _NOSE, _MOUTH = (_SPHERE_112x96[k].mean(0) for k in ([0, 1], [2], [3, 4]))

_TEMPLATES = {
    "sphere_112x96": Template("sphere_112x96", 112, 96, _SPHERE_112x96),
    "sphere_112x112": Template("sphere_112x112", 112, 112, _SPHERE_112x96 + [8.0, 0.0]),
    "center_112x96": Template("center_112x96", 112, 96, _SPHERE_112x96, fit="fixed"),
    "box_112x96": Template("box_112x96", 112, 96, _SPHERE_112x96, fit="box"),
    "facenet_160": Template("facenet_160", 160, 160, None, fit="detection", margin=0.25),
    "deepid_55x47": Template("deepid_55x47", 55, 47, _window(_FRAME_CENTRE, 112, 55, 47)),
    "deepid_face_47x47": Template("deepid_face_47x47", 47, 47,
                                  _window(_FRAME_CENTRE, 112, 47, 47)),
    "deepid_eyes_47x47": Template("deepid_eyes_47x47", 47, 47, _window(_EYES, 56, 47, 47)),
    "deepid_nose_47x47": Template("deepid_nose_47x47", 47, 47, _window(_NOSE, 56, 47, 47)),
    "deepid_mouth_47x47": Template("deepid_mouth_47x47", 47, 47, _window(_MOUTH, 56, 47, 47)),
}
TEMPLATE_NAMES = tuple(_TEMPLATES)


def get_template(name: str, scale: float = 1.0, margin: float | None = None) -> Template:
    """The named template with its crop and points scaled by ``scale`` (pixel-centre rule);
    ``margin`` replaces a detection template's default margin."""
    if name not in _TEMPLATES:
        raise KeyError(f"unknown template {name!r}; known: {list(_TEMPLATES)}")
    t = _TEMPLATES[name]
    points = None if t.points is None else (t.points + 0.5) * scale - 0.5
    return Template(t.name, round(t.height * scale), round(t.width * scale), points, t.fit,
                    t.margin if margin is None else margin)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src to dst.

    Umeyama (1991), Eq. 40-42, with the reflection case excluded. ``src`` and ``dst`` are
    (..., K, 2) point sets that broadcast against each other (a stack of faces against one
    template); returns (..., 2, 3) matrices M such that ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src, dst = np.broadcast_arrays(np.asarray(src, np.float64), np.asarray(dst, np.float64))
    n = src.shape[-2]
    mu_s, mu_d = src.mean(-2), dst.mean(-2)
    sc, dc = src - mu_s[..., None, :], dst - mu_d[..., None, :]
    cov = np.swapaxes(dc, -1, -2) @ sc / n
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones_like(d)
    sign[..., -1] = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    rot = u @ (sign[..., :, None] * vt)                  # u diag(sign) vt
    scale = (d * sign).sum(-1) / ((sc ** 2).sum((-2, -1)) / n)
    m = np.empty(src.shape[:-2] + (2, 3))
    m[..., :2] = scale[..., None, None] * rot
    m[..., 2] = mu_d - np.einsum("...ij,...j->...i", m[..., :2], mu_s)
    return m


def scale_shift(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares uniform scale and translation (no rotation) mapping src to dst, as 2x3
    matrices (stacks broadcast as in :func:`umeyama`): ``s = sum <p_i - p, q_i - q> /
    sum |p_i - p|^2``, ``t = q - s p`` (p, q the means)."""
    src, dst = np.broadcast_arrays(np.asarray(src, np.float64), np.asarray(dst, np.float64))
    mu_s, mu_d = src.mean(-2), dst.mean(-2)
    sc = src - mu_s[..., None, :]
    scale = (sc * (dst - mu_d[..., None, :])).sum((-2, -1)) / (sc ** 2).sum((-2, -1))
    m = np.zeros(src.shape[:-2] + (2, 3))
    m[..., 0, 0] = m[..., 1, 1] = scale
    m[..., 2] = mu_d - scale[..., None] * mu_s
    return m


def box_crop(box: np.ndarray, template: Template) -> np.ndarray:
    """2x3 transform cropping around a detector box ``(x1, y1, x2, y2)`` (outer edges): the
    box's longer side times ``1 + template.margin`` spans the crop's width, centres aligned."""
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64)
    scale = template.width / (max(x2 - x1, y2 - y1) * (1 + template.margin))
    # the box centre lands on the crop centre, (w / 2 - 0.5, h / 2 - 0.5) in pixel centres
    return np.array([[scale, 0.0, template.width / 2 - 0.5 - scale * (x1 + x2) / 2],
                     [0.0, scale, template.height / 2 - 0.5 - scale * (y1 + y2) / 2]])


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 2x3 affine matrix."""
    return np.asarray(points) @ m[:, :2].T + m[:, 2]


def warp(image: np.ndarray, m: np.ndarray, template: Template) -> np.ndarray:
    """Crop ``image`` to the template size through the 2x3 transform ``m``."""
    return cv2.warpAffine(image, m, (template.width, template.height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
