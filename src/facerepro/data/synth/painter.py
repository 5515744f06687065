"""Drawing primitives: shapes in the canonical face frame, mapped through the pose and drawn
anti-aliased."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, NamedTuple

import cv2
import numpy as np

from facerepro.data.synth.geometry import _Pose

_SHIFT = 4                        # fixed-point bits: cv2 draws at 1/16 pixel precision


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24, t0: float = 0.0,
             t1: float = 2 * np.pi, rot: float = 0.0) -> np.ndarray:
    cos_t, sin_t = _unit_arc(n, t0, t1)
    x, y = rx * cos_t, ry * sin_t
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + x * c - y * s, cy + x * s + y * c], axis=1)


@lru_cache(maxsize=256)
def _unit_arc(n: int, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(t0, t1, n)
    return np.cos(t), np.sin(t)


def _fixed(px: np.ndarray) -> np.ndarray:
    return np.round(px * (1 << _SHIFT)).astype(np.int32)


def _colour(rgb: Any) -> tuple[float, float, float]:
    r, g, b = (min(255.0, max(0.0, float(v))) for v in rgb)
    return r, g, b


class _Shape(NamedTuple):
    points: np.ndarray
    depth: float | np.ndarray
    rgb: Any
    alpha: float
    width: float | None          # None fills the polygon
    closed: bool


class _Painter:
    """Collects canonical-frame shapes, maps all their points through the pose in one
    vectorised call, then draws them in order (anti-aliased, 1/16 px precision)."""

    def __init__(self, pose: _Pose):
        self.pose = pose
        self._shapes: list[_Shape] = []

    def fill(self, pts: np.ndarray, rgb: Any, depth: float | np.ndarray = 0.0,
             alpha: float = 1.0) -> None:
        self._shapes.append(_Shape(np.asarray(pts, float), depth, rgb, alpha, None, False))

    def stroke(self, pts: np.ndarray, rgb: Any, width: float, depth: float | np.ndarray = 0.0,
               closed: bool = False, alpha: float = 1.0) -> None:
        self._shapes.append(_Shape(np.asarray(pts, float), depth, rgb, alpha, width, closed))

    def draw(self, image: np.ndarray) -> None:
        sizes = [len(s.points) for s in self._shapes]
        ends = np.cumsum(sizes).tolist()
        spans = list(zip([e - n for e, n in zip(ends, sizes, strict=True)], ends, strict=True))
        depth = np.empty(ends[-1])
        for shape, (start, end) in zip(self._shapes, spans, strict=True):
            depth[start:end] = shape.depth
        px = self.pose.apply(np.concatenate([s.points for s in self._shapes]), depth)
        fixed = _fixed(px)
        for shape, (start, end) in zip(self._shapes, spans, strict=True):
            self._draw(image, shape, px[start:end], fixed[start:end])
        self._shapes.clear()

    def _draw(self, image: np.ndarray, shape: _Shape, px: np.ndarray, fixed: np.ndarray
              ) -> None:
        colour = _colour(shape.rgb)
        pad = 1
        if shape.width is None:
            def op(img: np.ndarray, p: np.ndarray) -> None:
                cv2.fillPoly(img, [p], colour, cv2.LINE_AA, _SHIFT)
        else:
            pad = max(1, round(shape.width * self.pose.scale))

            def op(img: np.ndarray, p: np.ndarray) -> None:
                cv2.polylines(img, [p], shape.closed, colour, pad, cv2.LINE_AA, _SHIFT)
        if shape.alpha >= 1.0:
            op(image, fixed)
            return
        # Translucent paint (make-up, shadows): draw on a copy of the bounding box and blend.
        h, w = image.shape[:2]
        x0, y0 = np.maximum(np.floor(px.min(0)).astype(int) - pad - 1, 0)
        x1, y1 = np.minimum(np.ceil(px.max(0)).astype(int) + pad + 2, (w, h))
        if x0 >= x1 or y0 >= y1:
            return
        roi = image[y0:y1, x0:x1]
        layer = roi.copy()
        op(layer, fixed - np.array([x0, y0], dtype=np.int32) * (1 << _SHIFT))
        roi[...] = cv2.addWeighted(layer, shape.alpha, roi, 1 - shape.alpha, 0)
