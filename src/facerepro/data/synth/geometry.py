"""Geometry: one transform for every drawn point and every landmark."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from facerepro.data.synth.identity import Identity
from facerepro.data.synth.shot import Shot

WILD_SIZE = (250, 250)            # LFW and CASIA-WebFace images (width, height)
CELEBA_SIZE = (178, 218)          # img_align_celeba
# Approximate mean eye centres of CelebA's aligned images (list_landmarks_align_celeba.txt).
CELEBA_EYES = np.array([[69.0, 111.0], [108.0, 111.0]])
_HEAD_DEPTH = 0.85                # depth of the head's cross-section over its half width
_EYE_DEPTH, _NOSE_DEPTH, _MOUTH_CORNER_DEPTH = -1.5, 12.0, 1.0


class _Pose:
    """Canonical face frame -> image pixels: yaw about the head's vertical axis, then roll,
    scale and translation. Landmarks go through this same map as every drawn point.

    Yaw treats each horizontal slice of the head as an ellipse (half width ``head_w``, depth
    ``_HEAD_DEPTH * head_w``) seen from the side: points on the face move along it, the
    face contour stays on the silhouette, and points with extra depth (nose tip, glasses)
    shift further, so features foreshorten and slide as on a turned head.
    """

    def __init__(self, yaw_deg: float, head_w: float, roll_deg: float, scale: float,
                 center: Sequence[float]):
        yaw = math.radians(yaw_deg)
        self._sin, self._cos = math.sin(yaw), math.cos(yaw)
        self._w = head_w
        depth = _HEAD_DEPTH * head_w
        self._radius = math.hypot(head_w * self._cos, depth * self._sin)
        self._alpha = math.atan2(depth * self._sin, head_w * self._cos)
        r = math.radians(roll_deg)
        self.scale = scale
        self._linear = scale * np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
        self._center = np.asarray(center, dtype=float)

    @classmethod
    def aligned(cls, yaw_deg: float, head_w: float, eyes: np.ndarray, targets: np.ndarray
                ) -> _Pose:
        """The pose that yaws by ``yaw_deg`` and then puts the two eyes exactly on targets."""
        turned = cls(yaw_deg, head_w, 0.0, 1.0, (0.0, 0.0)).apply(eyes, _EYE_DEPTH)
        src, dst = turned[1] - turned[0], targets[1] - targets[0]
        scale = float(np.hypot(*dst) / np.hypot(*src))
        roll = math.degrees(math.atan2(dst[1], dst[0]) - math.atan2(src[1], src[0]))
        pose = cls(yaw_deg, head_w, roll, scale, (0.0, 0.0))
        pose._center = targets[0] - pose.apply(eyes[:1], _EYE_DEPTH)[0]
        return pose

    def apply(self, pts: np.ndarray, depth: float | np.ndarray = 0.0) -> np.ndarray:
        pts = np.asarray(pts, dtype=float).reshape(-1, 2)
        x, y = pts[:, 0], pts[:, 1]
        u = np.clip(x / self._w, -1.0, 1.0)
        phi = np.arcsin(u)
        # Stretch the angle so the contour (phi = +-90 deg) lands on the silhouette.
        phi = phi - self._alpha * np.abs(phi) / (np.pi / 2)
        turned = self._radius * np.sin(phi + self._alpha)
        beyond = x - u * self._w   # hair and ears outside the face contour
        turned = turned + beyond * self._cos + np.asarray(depth) * self._sin
        return np.stack([turned, y], axis=1) @ self._linear.T + self._center


def _wild_pose(identity: Identity, shot: Shot) -> _Pose:
    center = (WILD_SIZE[0] / 2 + shot.shift[0], WILD_SIZE[1] / 2 + shot.shift[1])
    return _Pose(shot.yaw, identity.face_w, shot.roll, shot.scale, center)


def _celeba_pose(identity: Identity, shot: Shot) -> _Pose:
    eyes = _eye_centres(identity)
    targets = CELEBA_EYES + np.reshape(shot.eye_jitter, (2, 2))
    return _Pose.aligned(shot.yaw, identity.face_w, eyes, targets)


def _eye_centres(f: Identity) -> np.ndarray:
    return np.array([[-f.eye_dx, f.eye_y], [f.eye_dx, f.eye_y + f.eye_asym]])


def _landmarks_canonical(f: Identity, shot: Shot) -> tuple[np.ndarray, np.ndarray]:
    x, upper_out, _, _, _, depth = _mouth_curves(f, shot)
    pts = np.vstack([_eye_centres(f), [[0.0, f.tip_y]],
                     [[x[0], upper_out[0]], [x[-1], upper_out[-1]]]])
    depths = np.array([_EYE_DEPTH, _EYE_DEPTH, _NOSE_DEPTH, depth[0], depth[-1]])
    return pts, depths


def _mouth_curves(f: Identity, shot: Shot) -> tuple[np.ndarray, ...]:
    """Lip curves across the mouth (x, upper outer, upper inner, lower inner, lower outer,
    depth). All four curves meet at the corners, which are the mouth landmarks."""
    t = np.linspace(-1.0, 1.0, 15)
    x = (f.mouth_w + 1.5 * shot.smile) * t
    centre = f.mouth_y - 3.5 * shot.smile * t**2
    gap = (1.2 + 3.8 * shot.mouth_open) * (1 - t**2) if shot.mouth_open > 0 else 0 * t
    bulge = (1 - t**2) ** 0.7
    bow = 1 - 0.35 * np.exp(-((t / 0.15) ** 2))   # the cupid's bow dips at the centre
    upper_in, lower_in = centre - gap / 2, centre + gap / 2
    upper_out = upper_in - f.lip_upper * bulge * bow
    lower_out = lower_in + f.lip_lower * bulge * (1 - 0.15 * shot.smile)
    depth = _MOUTH_CORNER_DEPTH + 3 * (1 - t**2)
    return x, upper_out, upper_in, lower_in, lower_out, depth
