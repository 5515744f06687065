"""Per-image parameters: the attributes and nuisance of one image of a person, and of the
frames of one video."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from facerepro.data.synth.attributes import (
    _BLURRY_SIGMA,
    ATTRIBUTES,
    _rate_given_gender,
    positive_rate,
)
from facerepro.data.synth.config import Nuisance
from facerepro.data.synth.identity import _HAIR_LENGTHS, Identity


@dataclass(frozen=True)
class Shot:
    """Everything that changes from one image of a person to the next."""

    attributes: dict[str, int]   # image-level CelebA attributes, 0/1
    roll: float                  # degrees, clockwise on screen
    yaw: float                   # degrees, positive turns the features to image right
    scale: float
    shift: tuple[float, float]   # pixels
    eye_jitter: tuple[float, float, float, float]   # CelebA alignment error, pixels
    smile: float                 # 0..1
    mouth_open: float            # 0..1
    brow_raise: float            # pixels
    drift: tuple[float, ...]     # the person's look on the day, see _drifted
    hair_len: str | None         # another hair length than usual (cut, tied back), or None
    gain: float
    contrast: float
    cast: tuple[float, float, float]
    light_dir: float             # radians
    light_strength: float
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int
    clutter: int                 # background shapes
    hand: bool
    blocks: int
    detail_seed: int             # cosmetic choices: colours, styles, clutter, placements
    # The sensor noise's own seed (a video's frames share the scene, not the noise); None:
    # drawn from detail_seed, as for a photo.
    noise_seed: int | None = None


def sample_shot(identity: Identity, rng: np.random.Generator, nuisance: Nuisance) -> Shot:
    """Draw one image's attributes and nuisance for ``identity``."""
    nz = nuisance
    male = identity.male
    lipstick = rng.random() < _rate_given_gender("Wearing_Lipstick", male)
    makeup = lipstick and rng.random() < (_rate_given_gender("Heavy_Makeup", male)
                                          / _rate_given_gender("Wearing_Lipstick", male))
    attrs = {
        "Smiling": rng.random() < positive_rate("Smiling"),
        "Mouth_Slightly_Open": rng.random() < positive_rate("Mouth_Slightly_Open"),
        "Blurry": rng.random() < positive_rate("Blurry"),
        "Wearing_Hat": rng.random() < positive_rate("Wearing_Hat"),
        "Eyeglasses": rng.random() < _rate_given_gender("Eyeglasses", male),
        "Wearing_Earrings": rng.random() < _rate_given_gender("Wearing_Earrings", male),
        "Wearing_Necklace": rng.random() < _rate_given_gender("Wearing_Necklace", male),
        "Wearing_Necktie": rng.random() < _rate_given_gender("Wearing_Necktie", male),
        "Wearing_Lipstick": lipstick,
        "Heavy_Makeup": makeup,
    }
    attrs = {k: int(v) for k, v in attrs.items()}
    e = nz.expression
    normal = rng.standard_normal(10)
    smile = (np.clip(0.75 + 0.25 * e * normal[0], 0.45, 1.0) if attrs["Smiling"]
             else np.clip(0.12 * e * abs(normal[0]), 0.0, 0.25))
    opened = np.clip(0.6 + 0.25 * e * normal[1], 0.3, 1.0) if attrs["Mouth_Slightly_Open"] else 0
    quality = int(rng.integers(nz.jpeg_quality_min, nz.jpeg_quality_max + 1))
    blur = (rng.uniform(*_BLURRY_SIGMA) if attrs["Blurry"] else rng.uniform(0, nz.blur_sigma))
    return Shot(
        attributes=attrs,
        roll=float(np.clip(normal[2], -3, 3) * nz.roll_deg),
        yaw=float(np.clip(normal[3] * nz.yaw_deg, -40, 40)),
        scale=float(np.exp(np.clip(normal[4], -3, 3) * nz.scale)),
        shift=(float(np.clip(normal[5], -3, 3) * nz.shift_px),
               float(np.clip(normal[6], -3, 3) * nz.shift_px)),
        eye_jitter=tuple(float(v) for v in rng.normal(0, 1.0, 4)),
        smile=float(smile),
        mouth_open=float(opened),
        brow_raise=float(2.0 * e * normal[7]),
        drift=tuple(float(v) for v in rng.standard_normal(8) * nz.appearance),
        hair_len=(_HAIR_LENGTHS[rng.integers(3)] if rng.random() < 0.1 * nz.appearance
                  else None),
        gain=float(np.exp(normal[8] * nz.light_gain)),
        contrast=float(np.exp(normal[9] * nz.contrast)),
        cast=tuple(float(v) for v in np.exp(rng.normal(0, nz.color_cast, 3))),
        light_dir=float(rng.uniform(0, 2 * np.pi)),
        light_strength=float(rng.uniform(0, nz.light_gradient)),
        blur_sigma=float(blur),
        noise_sigma=float(rng.uniform(0, nz.noise_sigma)),
        jpeg_quality=quality,
        clutter=int(rng.poisson(8 * nz.clutter)),
        hand=bool(rng.random() < nz.hand_prob),
        blocks=int(rng.integers(1, 3)) if rng.random() < nz.block_prob else 0,
        detail_seed=int(rng.integers(2**63)),
    )


def attribute_row(identity: Identity, shot: Shot) -> list[int]:
    """The 40 attributes of one image in CelebA's order, as +1 / -1."""
    merged = {**identity.attributes, **shot.attributes}
    return [1 if merged[a] else -1 for a in ATTRIBUTES]


def video_shots(identity: Identity, rng: np.random.Generator, nuisance: Nuisance, frames: int,
                motion: float, smoothness: float) -> list[Shot]:
    """The shots of one video: a photo's shot (:func:`sample_shot`) as the first frame, then
    each continuous nuisance on a smooth random walk about it.

    The walk is AR(1), ``w_t = smoothness w_(t-1) + sqrt(1 - smoothness^2) e_t`` from
    ``w_0 = 0``, so its spread approaches 1; a nuisance moves by ``motion`` times its spread
    between photos times ``w_t`` (pose, light, expression, blur, noise, JPEG quality), on the
    log scale for the multiplicative ones, within the ranges :func:`sample_shot` draws from.
    The scene (background, clothes, occluders, attributes, the day's look) stays; each frame
    has its own sensor noise.
    """
    nz, e = nuisance, nuisance.expression
    base = sample_shot(identity, rng, nuisance)
    uniform = 1 / math.sqrt(12)     # the std of a uniform draw, per unit of its range
    blur_range = _BLURRY_SIGMA if base.attributes["Blurry"] else (0.0, nz.blur_sigma)
    # name: (between-photo spread, lower bound, upper bound); scale, gain and contrast walk
    # on the log scale, as sample_shot draws them
    spread = {
        "roll": (nz.roll_deg, -3 * nz.roll_deg, 3 * nz.roll_deg),
        "yaw": (nz.yaw_deg, -40.0, 40.0),
        "scale": (nz.scale, -3 * nz.scale, 3 * nz.scale),
        "shift_x": (nz.shift_px, -3 * nz.shift_px, 3 * nz.shift_px),
        "shift_y": (nz.shift_px, -3 * nz.shift_px, 3 * nz.shift_px),
        "smile": (0.25 * e, *((0.45, 1.0) if base.attributes["Smiling"] else (0.0, 0.25))),
        "mouth_open": (0.25 * e, 0.3, 1.0),
        "brow_raise": (2.0 * e, -np.inf, np.inf),
        "gain": (nz.light_gain, -np.inf, np.inf),
        "contrast": (nz.contrast, -np.inf, np.inf),
        "light_dir": (2 * np.pi * uniform, -np.inf, np.inf),
        "light_strength": (nz.light_gradient * uniform, 0.0, nz.light_gradient),
        "blur_sigma": ((blur_range[1] - blur_range[0]) * uniform, *blur_range),
        "noise_sigma": (nz.noise_sigma * uniform, 0.0, nz.noise_sigma),
        "jpeg_quality": ((nz.jpeg_quality_max - nz.jpeg_quality_min) * uniform,
                         nz.jpeg_quality_min, nz.jpeg_quality_max),
    }
    start = {"roll": base.roll, "yaw": base.yaw, "scale": math.log(base.scale),
             "shift_x": base.shift[0], "shift_y": base.shift[1], "smile": base.smile,
             "mouth_open": base.mouth_open, "brow_raise": base.brow_raise,
             "gain": math.log(base.gain), "contrast": math.log(base.contrast),
             "light_dir": base.light_dir, "light_strength": base.light_strength,
             "blur_sigma": base.blur_sigma, "noise_sigma": base.noise_sigma,
             "jpeg_quality": float(base.jpeg_quality)}
    names = list(spread)
    walk = np.zeros((frames, len(names)))
    steps = rng.standard_normal((frames, len(names)))
    for t in range(1, frames):
        walk[t] = smoothness * walk[t - 1] + math.sqrt(1 - smoothness**2) * steps[t]
    noise_seeds = rng.integers(2**63, size=frames)
    shots = []
    for t in range(frames):
        v = {}
        for k, name in enumerate(names):
            scale, lo, hi = spread[name]
            v[name] = float(np.clip(start[name] + motion * scale * walk[t, k], lo, hi))
        shots.append(dataclasses.replace(
            base, roll=v["roll"], yaw=v["yaw"], scale=math.exp(v["scale"]),
            shift=(v["shift_x"], v["shift_y"]), smile=v["smile"],
            # a closed mouth stays closed: Mouth_Slightly_Open is the video's attribute
            mouth_open=v["mouth_open"] if base.mouth_open else 0.0,
            brow_raise=v["brow_raise"], gain=math.exp(v["gain"]),
            contrast=math.exp(v["contrast"]), light_dir=v["light_dir"],
            light_strength=v["light_strength"], blur_sigma=v["blur_sigma"],
            noise_sigma=v["noise_sigma"], jpeg_quality=round(v["jpeg_quality"]),
            noise_seed=int(noise_seeds[t])))
    return shots
