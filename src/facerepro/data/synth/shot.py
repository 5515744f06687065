"""Per-image parameters: the attributes and nuisance of one image of a person."""

from __future__ import annotations

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
