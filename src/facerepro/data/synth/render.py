"""One image: background, the person, occluders, then the camera (light, blur, noise); and
its JPEG encoding."""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

import cv2
import numpy as np

from facerepro.data.synth.geometry import (
    CELEBA_SIZE,
    WILD_SIZE,
    _celeba_pose,
    _landmarks_canonical,
    _Pose,
    _wild_pose,
)
from facerepro.data.synth.identity import Identity
from facerepro.data.synth.painter import _SHIFT, _colour, _fixed, _Painter
from facerepro.data.synth.person import (
    _draw_body,
    _draw_earrings,
    _draw_ears,
    _draw_face,
    _draw_glasses,
    _draw_hair_back,
    _draw_hair_front,
    _draw_hand,
    _draw_hat,
    _head_outline,
    _Style,
)
from facerepro.data.synth.shot import Shot


def render(identity: Identity, shot: Shot, layout: str = "wild"
           ) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image: RGB uint8 and its five landmarks (5, 2) in pixels (OpenCV's convention,
    pixel centres at integers; left eye, right eye, nose, left and right mouth corner, "left"
    being the image's left).

    ``layout`` is "wild" (250x250, LFW / CASIA-WebFace: the shot's pose) or "celeba" (178x218,
    the aligned CelebA crop: eyes placed at CelebA's positions, with a small jitter).
    """
    identity = _drifted(identity, shot)
    if layout == "wild":
        size, pose = WILD_SIZE, _wild_pose(identity, shot)
    elif layout == "celeba":
        size, pose = CELEBA_SIZE, _celeba_pose(identity, shot)
    else:
        raise ValueError(f"unknown layout {layout!r}; use 'wild' or 'celeba'")
    streams = np.random.SeedSequence(shot.detail_seed).spawn(4)
    look, scene, occluder, noise = (np.random.default_rng(s) for s in streams)
    if shot.noise_seed is not None:
        noise = np.random.default_rng(shot.noise_seed)
    style = _Style.sample(look)

    image = np.empty((size[1], size[0], 3), dtype=np.uint8)
    _draw_background(image, scene, shot.clutter)
    paint = _Painter(pose)
    f, at = identity, {**identity.attributes, **shot.attributes}
    _draw_body(paint, f, at, style)
    long_hair = not at["Bald"] and f.hair_len != "short"
    if long_hair:   # long hair falls over the ears, short hair stays behind them
        _draw_ears(paint, f)
    _draw_hair_back(paint, f, at)
    if not long_hair:
        _draw_ears(paint, f)
    _draw_face(paint, f, at, shot, style)
    _draw_hair_front(paint, f, at)
    if at["Wearing_Earrings"]:
        _draw_earrings(paint, f, style)
    if at["Wearing_Hat"]:
        _draw_hat(paint, f, style)
    if at["Eyeglasses"]:
        _draw_glasses(paint, f, shot, style)
    if shot.hand:
        _draw_hand(paint, f, occluder)
    paint.draw(image)
    if shot.blocks:
        _draw_blocks(image, pose, f, occluder, shot.blocks)
    image = _camera(image, pose, f, shot, noise)
    return image, pose.apply(*_landmarks_canonical(f, shot))


def _drifted(f: Identity, shot: Shot) -> Identity:
    """The person as on the day of this photo: tan, weight, hair and grooming vary."""
    d = shot.drift
    return dataclasses.replace(
        f,
        skin=np.clip(f.skin * (1 + 0.04 * d[0]), 0, 255),
        hair_rgb=np.clip(f.hair_rgb * (1 + 0.06 * d[1]), 0, 255),
        face_w=f.face_w + 0.8 * d[2],
        chin_y=f.chin_y + 0.6 * abs(d[3]),
        hair_volume=max(1.0, f.hair_volume + 1.5 * d[4]),
        hairline=f.hairline + 1.5 * d[5],
        brow_thick=max(1.0, f.brow_thick + 0.3 * d[6]),
        lip_rgb=np.clip(f.lip_rgb * (1 + 0.05 * d[7]), 0, 255),
        hair_len=shot.hair_len or f.hair_len,
    )


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _draw_background(image: np.ndarray, rng: np.random.Generator, shapes: int) -> None:
    h, w = image.shape[:2]
    corners = rng.uniform(25, 230, (2, 2, 3)).astype(np.uint8)
    image[...] = cv2.resize(corners, (w, h), interpolation=cv2.INTER_LINEAR)
    for _ in range(shapes):
        colour = _colour(rng.uniform(0, 255, 3))
        x, y = rng.uniform(-20, w + 20), rng.uniform(-20, h + 20)
        size = rng.uniform(6, 60)
        kind = rng.integers(5)
        if kind == 0:
            cv2.rectangle(image, (int(x), int(y)), (int(x + size), int(y + size * 0.7)), colour,
                          -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.circle(image, (int(x), int(y)), int(size / 2), colour, -1, cv2.LINE_AA)
        elif kind == 2:
            end = (int(x + rng.uniform(-80, 80)), int(y + rng.uniform(-80, 80)))
            cv2.line(image, (int(x), int(y)), end, colour, int(rng.integers(1, 5)), cv2.LINE_AA)
        elif kind == 3:
            tri = np.array([x, y]) + rng.uniform(-size, size, (3, 2))
            cv2.fillPoly(image, [_fixed(tri)], colour, cv2.LINE_AA, _SHIFT)
        else:   # a striped texture patch
            step, angle = rng.uniform(3, 8), rng.uniform(0, np.pi)
            d = np.array([math.cos(angle), math.sin(angle)])
            n = np.array([-d[1], d[0]])
            for k in range(int(size / step)):
                p = np.array([x, y]) + n * k * step
                cv2.line(image, tuple(int(v) for v in p - d * size),
                         tuple(int(v) for v in p + d * size), colour, 1, cv2.LINE_AA)


def _draw_blocks(image: np.ndarray, pose: _Pose, f: Identity, rng: np.random.Generator,
                 count: int) -> None:
    box = pose.apply(_head_outline(f))
    (x0, y0), (x1, y1) = box.min(0), box.max(0)
    for _ in range(count):
        w, h = rng.uniform(12, 45, 2) * pose.scale
        x, y = rng.uniform(x0, max(x0, x1 - w)), rng.uniform(y0, max(y0, y1 - h))
        cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)),
                      _colour(rng.uniform(0, 255, 3)), -1)


@lru_cache(maxsize=4)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


@lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """Unit Gaussian noise that images take shifted windows of: drawing fresh noise per image
    costs more than all the drawing."""
    return np.random.default_rng(20240601).standard_normal((512, 512, 3), dtype=np.float32)


def _camera(image: np.ndarray, pose: _Pose, f: Identity, shot: Shot,
            rng: np.random.Generator) -> np.ndarray:
    """Light (contrast, gain, colour cast, a directional gradient), blur and sensor noise."""
    h, w = image.shape[:2]
    x = image.astype(np.float32)
    # Contrast about the mean, then per-channel gain, as one affine colour map.
    mean = float(x.mean())
    gains = shot.gain * np.asarray(shot.cast, dtype=np.float32)
    affine = np.zeros((3, 4), dtype=np.float32)
    affine[:, :3] = np.diag(gains * shot.contrast)
    affine[:, 3] = gains * mean * (1 - shot.contrast)
    x = cv2.transform(x, affine)
    xs, ys = _grid(h, w)
    cx, cy = pose.apply(np.zeros((1, 2)))[0]
    radius = f.face_w * pose.scale   # the gradient is set per face radius, whatever the size
    dx, dy = math.cos(shot.light_dir) / radius, math.sin(shot.light_dir) / radius
    ramp = cv2.addWeighted(xs, dx, ys, dy, -(cx * dx + cy * dy))
    x *= (1 + shot.light_strength * np.clip(ramp, -1.2, 1.2))[..., None]
    if shot.blur_sigma > 0.05:
        x = cv2.GaussianBlur(x, (0, 0), shot.blur_sigma)
    if shot.noise_sigma > 0:
        bank = _noise_bank()
        r0, c0 = rng.integers(0, bank.shape[0] - h + 1), rng.integers(0, bank.shape[1] - w + 1)
        x += bank[r0:r0 + h, c0:c0 + w] * shot.noise_sigma
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)
