"""SynthFaces: procedural faces written in the real datasets' on-disk formats.

The embedded default dataset, so that the whole pipeline runs with no network. Each identity is
a latent vector (face shape, eyes, brows, nose, mouth, ears, skin, hair, marks, beard, ...) and
each image adds nuisance (pose, light, expression, clutter, blur, noise, JPEG, occluders). The
40 CelebA attributes are rendered, at CelebA's imbalance levels (CLMLE, PAPERS.md section 5),
and every image carries its exact five landmarks. Every random stream is derived from
``SeedSequence((seed, part, stream, identity, image))``, so output does not depend on order or
process count, and the same seed gives byte-identical files.

Config keys (``SynthConfig.from_dict``; groups are nested dicts; default in brackets):

seed [0]                   root of every random stream; 0 <= seed < 2**32.
identity_spread [0.7]      scale of the identity-to-identity variation of continuous traits
                           (face shape, feature sizes and positions); lower = harder.
casia.identities [300]     CASIA-WebFace-like training identities.
casia.mean_images [43.0]   mean images per identity (the log-normal is solved to hit it).
casia.min_images [2]       fewest images per identity.
casia.max_images [300]     most images per identity.
casia.log_sigma [1.0]      spread of the log-normal image counts; 1.0 puts ~39% of identities
                           at <= 20 images, as in CASIA-WebFace.
casia.overlap [0]          this many LFW identities (the first ones in pairs.txt) also appear
                           in CASIA under their LFW name, to test removing evaluation
                           identities from training data.
lfw.identities [1200]      LFW-like evaluation identities.
lfw.folds [10]             folds of pairs.txt (identity-disjoint, as in LFW).
lfw.pairs_per_fold [100]   same pairs and, again, different pairs per fold (LFW: 300).
lfw.multi_fraction [0.29]  fraction of identities with >= 2 images (LFW: 1,680 / 5,749).
lfw.max_images [100]       most images of one LFW identity.
celeba.identities [200]    CelebA-like identities.
celeba.images [3000]       CelebA-like aligned images (split 80.3/9.8/9.9% by identity).
nuisance.roll_deg [10.0]   std of in-plane rotation, degrees.
nuisance.yaw_deg [15.0]    std of yaw (features shift and foreshorten across the head), deg.
nuisance.scale [0.12]      std of the log of the face scale.
nuisance.shift_px [10.0]   std of the face translation, pixels of the 250x250 image.
nuisance.light_gradient [0.4]  largest directional light gradient (relative change of
                           brightness per face radius).
nuisance.light_gain [0.2]  std of the log of the global brightness gain.
nuisance.contrast [0.2]    std of the log of the contrast factor.
nuisance.color_cast [0.1]  std of the log of each channel's gain.
nuisance.expression [1.0]  strength of expression variation beyond the Smiling and
                           Mouth_Slightly_Open attributes (smile intensity, brow raise).
nuisance.appearance [2.0] strength of the drift of a person's look between photos (tan,
                           weight, hair length and volume, grooming).
nuisance.clutter [1.0]     background clutter (mean number of shapes / 8).
nuisance.blur_sigma [1.0]  largest Gaussian blur sigma of images not labelled Blurry (px).
nuisance.noise_sigma [6.0] largest std of Gaussian pixel noise (0-255 scale).
nuisance.jpeg_quality_min [60], nuisance.jpeg_quality_max [95]  JPEG quality, uniform.
nuisance.hand_prob [0.08]  probability of a hand (a skin-coloured blob) over the face.
nuisance.block_prob [0.08] probability of one or two random blocks over the face.
Glasses and hats are occluders too; their rates are the Eyeglasses and Wearing_Hat rates.

Difficulty of the defaults, measured on the synthetic LFW protocol (all pairs of pairs.txt,
threshold from the 9 other folds): 150-component pixel PCA fit on CASIA crops, cosine, on
56x48 crops aligned by the ground-truth landmarks: 68.5% (gray) / 70.5% (RGB); on a fixed
centre crop instead: 59.6% / 61.2%. Trained shallow baselines (PCA + LDA 83.9%, HOG + colour
+ LDA 91.0%) stay well below 97%; lower ``identity_spread`` or raise ``nuisance.appearance``
if a learned model separates the identities too easily.

Public API: :class:`SynthConfig` (and its groups), :func:`make_identity`, :func:`sample_shot`,
:func:`render`, :func:`encode_jpeg`, :func:`attribute_row`, :func:`casia_image_counts`,
:func:`lfw_image_counts`, :func:`lfw_layout`, :func:`pairs_text`, :func:`casia_identities`,
:func:`celeba_layout`, :func:`write_part`, :func:`write_mirror`.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import Pool
from pathlib import Path
from statistics import NormalDist
from typing import Any, NamedTuple

import cv2
import numpy as np

from facerepro.atomic import atomic_path
from facerepro.data.download import sha256_of

# ---------------------------------------------------------------------------------------------
# Attributes

ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes",
    "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

# |positive rate - 50| in percent, as CLMLE lists them (PAPERS.md section 5).
IMBALANCE_LEVEL: dict[str, int] = {
    "5_o_Clock_Shadow": 39, "Arched_Eyebrows": 26, "Attractive": 1, "Bags_Under_Eyes": 31,
    "Bald": 48, "Bangs": 35, "Big_Lips": 27, "Big_Nose": 28, "Black_Hair": 26,
    "Blond_Hair": 35, "Blurry": 45, "Brown_Hair": 30, "Bushy_Eyebrows": 36, "Chubby": 44,
    "Double_Chin": 45, "Eyeglasses": 44, "Goatee": 44, "Gray_Hair": 46, "Heavy_Makeup": 18,
    "High_Cheekbones": 8, "Male": 11, "Mouth_Slightly_Open": 2, "Mustache": 46,
    "Narrow_Eyes": 38, "No_Beard": 35, "Oval_Face": 22, "Pale_Skin": 46, "Pointy_Nose": 23,
    "Receding_Hairline": 42, "Rosy_Cheeks": 44, "Sideburns": 44, "Smiling": 3,
    "Straight_Hair": 30, "Wavy_Hair": 22, "Wearing_Earrings": 33, "Wearing_Hat": 45,
    "Wearing_Lipstick": 5, "Wearing_Necklace": 38, "Wearing_Necktie": 43, "Young": 29,
}

# The level does not say which side is the majority; in CelebA the positives are the majority
# for these three (Attractive 51%, No_Beard 85%, Young 79%) and the minority for all others.
MAJORITY_POSITIVE: frozenset[str] = frozenset({"Attractive", "No_Beard", "Young"})

# Attributes that vary from image to image of one person; all others are fixed per identity.
IMAGE_ATTRIBUTES: frozenset[str] = frozenset({
    "Blurry", "Eyeglasses", "Heavy_Makeup", "Mouth_Slightly_Open", "Smiling",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie",
})


def positive_rate(attribute: str) -> float:
    """Target fraction of positives of one attribute (from its imbalance level)."""
    level = IMBALANCE_LEVEL[attribute] / 100
    return 0.5 + level if attribute in MAJORITY_POSITIVE else 0.5 - level


P_MALE = positive_rate("Male")

# Share of an attribute's positives that are male, so that attributes co-occur with gender as
# in CelebA (lipstick on women, neckties on men) while the overall rate stays the target.
# Attributes not listed are independent of gender.
_MALE_SHARE = {
    "Arched_Eyebrows": 0.1, "Attractive": 0.25, "Bags_Under_Eyes": 0.6, "Bald": 1.0,
    "Bangs": 0.2, "Big_Lips": 0.35, "Big_Nose": 0.75, "Blond_Hair": 0.2, "Bushy_Eyebrows": 0.7,
    "Chubby": 0.75, "Double_Chin": 0.7, "Eyeglasses": 0.6, "Heavy_Makeup": 0.0,
    "High_Cheekbones": 0.3, "Oval_Face": 0.3, "Pale_Skin": 0.3, "Pointy_Nose": 0.25,
    "Receding_Hairline": 0.75, "Rosy_Cheeks": 0.1, "Sideburns": 1.0, "Wavy_Hair": 0.2,
    "Wearing_Earrings": 0.05, "Wearing_Lipstick": 0.0, "Wearing_Necklace": 0.0,
    "Wearing_Necktie": 1.0, "Young": 0.33,
}


def _rate_given_gender(attribute: str, male: bool) -> float:
    share = _MALE_SHARE.get(attribute, P_MALE)
    p = positive_rate(attribute)
    return p * share / P_MALE if male else p * (1 - share) / (1 - P_MALE)


# Identity attributes that threshold a continuous latent trait: the trait also drives the
# geometry, so a Big_Nose face is the tail of a continuum of nose sizes, not a separate kind.
_THRESHOLDED = (
    "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Big_Lips", "Big_Nose",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "High_Cheekbones", "Narrow_Eyes", "Oval_Face",
    "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Young",
)
_NORMAL = NormalDist()
_BLURRY_SIGMA = (3.0, 5.0)        # Gaussian blur of Blurry images, pixels of a 250x250 image

# ---------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True)
class CasiaPart:
    identities: int = 300
    mean_images: float = 43.0
    min_images: int = 2
    max_images: int = 300
    log_sigma: float = 1.0
    overlap: int = 0

    def __post_init__(self) -> None:
        _require(self.identities >= 1, "casia.identities must be >= 1")
        _require(1 <= self.min_images <= self.max_images,
                 "casia.min_images must be >= 1 and <= casia.max_images")
        _require(self.min_images <= self.mean_images <= self.max_images,
                 "casia.mean_images must lie between casia.min_images and casia.max_images")
        _require(self.log_sigma > 0, "casia.log_sigma must be > 0")
        _require(0 <= self.overlap <= self.identities,
                 "casia.overlap must be between 0 and casia.identities")


@dataclass(frozen=True)
class LfwPart:
    identities: int = 1200
    folds: int = 10
    pairs_per_fold: int = 100
    multi_fraction: float = 0.29
    max_images: int = 100

    def __post_init__(self) -> None:
        _require(self.folds >= 1, "lfw.folds must be >= 1")
        _require(self.identities >= 2 * self.folds,
                 "lfw.identities must be >= 2 * lfw.folds (two identities per fold at least)")
        _require(self.pairs_per_fold >= 1, "lfw.pairs_per_fold must be >= 1")
        _require(0 < self.multi_fraction <= 1, "lfw.multi_fraction must be in (0, 1]")
        _require(self.max_images >= 2, "lfw.max_images must be >= 2")


@dataclass(frozen=True)
class CelebaPart:
    identities: int = 200
    images: int = 3000

    def __post_init__(self) -> None:
        _require(self.identities >= 3, "celeba.identities must be >= 3 (train, val, test)")
        _require(self.images >= self.identities, "celeba.images must be >= celeba.identities")


@dataclass(frozen=True)
class Nuisance:
    roll_deg: float = 10.0
    yaw_deg: float = 15.0
    scale: float = 0.12
    shift_px: float = 10.0
    light_gradient: float = 0.4
    light_gain: float = 0.2
    contrast: float = 0.2
    color_cast: float = 0.1
    expression: float = 1.0
    appearance: float = 2.0
    clutter: float = 1.0
    blur_sigma: float = 1.0
    noise_sigma: float = 6.0
    jpeg_quality_min: int = 60
    jpeg_quality_max: int = 95
    hand_prob: float = 0.08
    block_prob: float = 0.08

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _require(getattr(self, f.name) >= 0, f"nuisance.{f.name} must be >= 0")
        _require(1 <= self.jpeg_quality_min <= self.jpeg_quality_max <= 100,
                 "nuisance.jpeg_quality_min/max must satisfy 1 <= min <= max <= 100")
        _require(self.hand_prob <= 1 and self.block_prob <= 1,
                 "nuisance.hand_prob and nuisance.block_prob must be <= 1")
        _require(self.blur_sigma < _BLURRY_SIGMA[0],
                 f"nuisance.blur_sigma must be < {_BLURRY_SIGMA[0]} (the Blurry attribute's blur)")


@dataclass(frozen=True)
class SynthConfig:
    seed: int = 0
    identity_spread: float = 0.7
    casia: CasiaPart = field(default_factory=CasiaPart)
    lfw: LfwPart = field(default_factory=LfwPart)
    celeba: CelebaPart = field(default_factory=CelebaPart)
    nuisance: Nuisance = field(default_factory=Nuisance)

    def __post_init__(self) -> None:
        # SeedSequence splits larger ints into 32-bit words, which could alias other streams.
        _require(0 <= self.seed < 2**32, "seed must satisfy 0 <= seed < 2**32")
        _require(self.identity_spread >= 0, "identity_spread must be >= 0")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SynthConfig:
        """Build a config from nested dicts; unknown keys and wrong types raise ValueError."""
        return _from_dict(cls, d, "")


_GROUPS: dict[str, type] = {"casia": CasiaPart, "lfw": LfwPart, "celeba": CelebaPart,
                            "nuisance": Nuisance}


def _from_dict(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ValueError(f"SynthFaces config {prefix.rstrip('.') or 'root'} must be a mapping")
    defaults = cls()
    known = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if key not in known:
            raise ValueError(f"unknown SynthFaces config key {name!r}; known: {sorted(known)}")
        if cls is SynthConfig and key in _GROUPS:
            values[key] = _from_dict(_GROUPS[key], value, f"{name}.")
            continue
        want = type(getattr(defaults, key))
        ok = isinstance(value, int | float) if want is float else isinstance(value, want)
        if isinstance(value, bool) or not ok:
            raise ValueError(f"SynthFaces config key {name!r} must be {want.__name__}, "
                             f"got {value!r}")
        values[key] = want(value)
    return cls(**values)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"SynthFaces config: {message}")


# ---------------------------------------------------------------------------------------------
# Random streams

PARTS: tuple[str, ...] = ("lfw", "casia", "celeba")
_PART_CODE = {"lfw": 1, "casia": 2, "celeba": 3}
_STREAM_IDENTITY, _STREAM_IMAGE, _STREAM_LAYOUT = 1, 2, 3


def _rng(seed: int, part: str, stream: int, a: int = 0, b: int = 0) -> np.random.Generator:
    # Always five words: SeedSequence([1, 2]) and SeedSequence([1, 2, 0]) are the same stream.
    return np.random.default_rng(np.random.SeedSequence([seed, _PART_CODE[part], stream, a, b]))


# ---------------------------------------------------------------------------------------------
# Identities
#
# Canonical face frame: pixels at the nominal scale of a 250x250 image, origin near the nose
# bridge, y down; an unposed face has ~38 px between the eye centres (LFW-like).

_SKIN_TONES = np.array([[96, 62, 44], [141, 95, 70], [188, 140, 110], [224, 180, 150],
                        [241, 206, 182]], dtype=float)
_PALE_SKIN = np.array([247, 229, 220], dtype=float)
_HAIR = {"black": (30, 25, 23), "brown": (106, 72, 45), "blond": (214, 184, 128),
         "gray": (172, 170, 166), "auburn": (146, 72, 42), "strawberry": (196, 128, 84),
         "chestnut": (80, 52, 36)}
_IRIS = ((52, 36, 26), (92, 62, 36), (128, 100, 58), (98, 120, 78), (88, 120, 160))
_PUPIL_RGB = (10, 8, 8)


@dataclass(frozen=True, eq=False)
class Identity:
    """One person: everything that stays the same across their images (canonical frame)."""

    name: str
    attributes: dict[str, int]   # identity-level CelebA attributes, 0/1
    male: bool
    skin: np.ndarray             # RGB
    hair_rgb: np.ndarray
    brow_rgb: np.ndarray
    iris_rgb: np.ndarray
    lip_rgb: np.ndarray
    face_w: float                # half width at the cheeks; also the head's yaw radius
    face_top: float              # crown height above the origin
    chin_y: float
    jaw_n: float                 # superellipse exponent of the jaw: 2 round, 4 square
    jaw_taper: float             # narrowing of the lower jaw towards the chin
    eye_dx: float                # half the distance between eye centres
    eye_y: float
    eye_asym: float              # the image-right eye sits this much lower
    eye_w: float                 # eye half width
    eye_h: float                 # upper-lid height
    eye_tilt: float              # degrees, outer corners up
    iris_r: float
    brow_gap: float              # brow above eye centre
    brow_thick: float
    brow_arch: float
    brow_slope: float            # outer end lower (+) or higher (-)
    nose_len: float              # eye line to nose tip
    nose_w: float                # half width of the nose wings
    mouth_gap: float             # nose tip to mouth line
    mouth_w: float               # half width of the mouth
    lip_upper: float
    lip_lower: float
    ear_y: float
    ear_h: float
    ear_w: float
    hair_style: str              # straight | wavy | curly
    hair_len: str                # short | medium | long
    hair_volume: float
    hairline: float              # y of the hairline's centre
    wrinkles: float              # 0 for the young, up to 1
    details: np.ndarray          # (n, 4) identity-fixed marks: kind, x, y, radius
    strands: np.ndarray          # phases of the hair strands

    @property
    def tip_y(self) -> float:
        return self.eye_y + self.nose_len

    @property
    def mouth_y(self) -> float:
        return self.tip_y + self.mouth_gap


_MOLE, _FRECKLE, _BLEMISH = 0, 1, 2
_HAIR_LENGTHS = ("short", "medium", "long")


def make_identity(seed: int, part: str, index: int, name: str,
                  spread: float = SynthConfig.identity_spread) -> Identity:
    """The identity ``index`` of a part's identity stream (pure function of its arguments);
    ``spread`` is the config's ``identity_spread``."""
    rng = _rng(seed, part, _STREAM_IDENTITY, index)
    male = bool(rng.random() < P_MALE)
    attrs = {"Male": int(male)}
    trait = {}
    for a in _THRESHOLDED:
        trait[a] = rng.standard_normal()
        attrs[a] = int(trait[a] > _NORMAL.inv_cdf(1 - _rate_given_gender(a, male)))
    _sample_hair_attributes(rng, male, attrs)
    _sample_beard_attributes(rng, male, attrs)
    free = dict(zip(_FREE_TRAITS, rng.standard_normal(len(_FREE_TRAITS)) * spread, strict=True))
    t = {a: spread * z for a, z in trait.items()}   # traits as geometry sees them
    m, at = float(male), attrs

    eye_y = -10 + 1.5 * free["eye_y"]
    nose_len = 23 + 1.8 * free["nose_len"] + 1.0 * at["Big_Nose"]
    mouth_gap = 18 + 1.4 * free["mouth_gap"]
    lip_upper = max(1.2, 2.6 + 0.4 * t["Big_Lips"] - 0.4 * m + 1.3 * at["Big_Lips"])
    lip_lower = max(1.5, 1.3 * lip_upper + 0.3 * free["lips"])
    mouth_y = eye_y + nose_len + mouth_gap
    face_w = 44 + 1.6 * free["face_w"] + 1.2 * max(t["Chubby"], -1) + 2 * m + 4 * at["Chubby"]
    chin_y = max(56 + 2.5 * free["face_len"] + 2 * m + 3 * at["Oval_Face"],
                 mouth_y + lip_lower + 12)

    pos = _NORMAL.cdf(0.9 * trait["Pale_Skin"] + 0.45) * (len(_SKIN_TONES) - 1)
    lo = min(int(pos), len(_SKIN_TONES) - 2)
    skin = _SKIN_TONES[lo] + (pos - lo) * (_SKIN_TONES[lo + 1] - _SKIN_TONES[lo])
    if at["Pale_Skin"]:
        skin = _PALE_SKIN.copy()
    skin = np.clip(skin + free["skin_red"] * np.array([5.0, -1.0, -3.0]), 0, 255)
    hair = np.clip(np.array(_HAIR[_hair_colour_name(rng, attrs)], dtype=float)
                   + rng.normal(0, 8, 3), 0, 255)
    brow = hair * (0.6 if hair.sum() > 400 else 0.85)
    iris = np.array(_IRIS[rng.choice(len(_IRIS), p=(0.3, 0.35, 0.12, 0.08, 0.15))], float)
    lip = np.clip(skin * np.array([0.78, 0.52, 0.52]) + np.array([30, 8, 12]), 0, 255)

    hair_len = _HAIR_LENGTHS[rng.choice(3, p=(0.75, 0.2, 0.05) if male else (0.1, 0.35, 0.55))]
    style = "wavy" if at["Wavy_Hair"] else "straight" if at["Straight_Hair"] else "curly"
    return Identity(
        name=name, attributes=attrs, male=male, skin=skin, hair_rgb=hair, brow_rgb=brow,
        iris_rgb=iris, lip_rgb=lip,
        face_w=face_w,
        face_top=68 + 2 * free["face_len"],
        chin_y=chin_y,
        jaw_n=float(np.clip(2.7 - 0.3 * t["Oval_Face"] + 0.3 * m - 0.4 * at["Oval_Face"]
                            + 0.3 * free["jaw"], 1.9, 4.0)),
        jaw_taper=float(np.clip(0.18 + 0.06 * free["jaw"] + 0.08 * at["Oval_Face"]
                                - 0.05 * at["Chubby"], 0, 0.4)),
        eye_dx=19 + 1.3 * free["eye_dx"],
        eye_y=eye_y,
        eye_asym=0.0 if at["Attractive"] else 0.8 * rng.standard_normal(),
        eye_w=7.3 + 0.6 * free["eye_w"] + 0.3 * at["Attractive"],
        eye_h=max(1.6, 3.6 + 0.35 * free["eye_h"] - 0.25 * t["Narrow_Eyes"]
                  - 1.1 * at["Narrow_Eyes"]),
        eye_tilt=4 + 4 * free["eye_tilt"],
        iris_r=3.2 + 0.25 * free["iris"],
        brow_gap=8.5 + 1.1 * free["brow_gap"],
        brow_thick=max(1.2, 2.4 + 0.35 * free["brow_thick"] + 0.5 * t["Bushy_Eyebrows"]
                       + 0.7 * m + 2.0 * at["Bushy_Eyebrows"]),
        brow_arch=max(0.3, 1.6 + 0.5 * t["Arched_Eyebrows"] + 1.8 * at["Arched_Eyebrows"]),
        brow_slope=1.0 * free["brow_slope"],
        nose_len=nose_len,
        nose_w=max(5.0, 8 + 0.8 * t["Big_Nose"] + 0.6 * m + 2.2 * at["Big_Nose"]),
        mouth_gap=mouth_gap,
        mouth_w=14 + 1.2 * free["mouth_w"] + 0.6 * m,
        lip_upper=lip_upper,
        lip_lower=lip_lower,
        ear_y=eye_y + 8 + 1.2 * free["ear_y"],
        ear_h=11 + 1.0 * free["ear"],
        ear_w=5.5 + 0.5 * free["ear"],
        hair_style=style,
        hair_len=hair_len,
        hair_volume=5 + 2.5 * abs(free["volume"]) + 4 * (style == "curly"),
        hairline=eye_y - 33 + 2 * free["hairline"] - 0.8 * t["Receding_Hairline"]
        - 9 * at["Receding_Hairline"],
        wrinkles=0.0 if at["Young"] else float(rng.uniform(0.5, 1.0)),
        details=_sample_marks(rng, attrs, face_w, eye_y, chin_y),
        strands=rng.uniform(0, 2 * np.pi, 16),
    )


_FREE_TRAITS = ("eye_y", "nose_len", "mouth_gap", "lips", "face_w", "face_len", "skin_red",
                "jaw", "eye_dx", "eye_w", "eye_h", "eye_tilt", "iris", "brow_gap",
                "brow_thick", "brow_slope", "mouth_w", "ear_y", "ear", "volume", "hairline")


def _sample_hair_attributes(rng: np.random.Generator, male: bool, attrs: dict[str, int]) -> None:
    """Hair colour, texture, baldness and bangs, at the target rates overall.

    Gray hair is only for the not-Young; blond leans female; black and brown share what is
    left in fixed proportions (the rest is auburn, strawberry or chestnut: no CelebA label).
    """
    gray_if_old = positive_rate("Gray_Hair") / (1 - positive_rate("Young"))
    gray = not attrs["Young"] and rng.random() < gray_if_old
    not_gray = 1 - (1 - _rate_given_gender("Young", male)) * gray_if_old
    blond = not gray and rng.random() < _rate_given_gender("Blond_Hair", male) / not_gray
    rest = 1 - positive_rate("Gray_Hair") - positive_rate("Blond_Hair")
    u = rng.random()
    black = not (gray or blond) and u < positive_rate("Black_Hair") / rest
    brown = not (gray or blond or black) and (
        u < (positive_rate("Black_Hair") + positive_rate("Brown_Hair")) / rest)
    attrs.update(Gray_Hair=int(gray), Blond_Hair=int(blond), Black_Hair=int(black),
                 Brown_Hair=int(brown))

    wavy_rate = _rate_given_gender("Wavy_Hair", male)
    wavy = rng.random() < wavy_rate
    straight = not wavy and rng.random() < positive_rate("Straight_Hair") / (1 - wavy_rate)
    bald_rate = _rate_given_gender("Bald", male)
    bald = rng.random() < bald_rate
    bangs = not bald and rng.random() < _rate_given_gender("Bangs", male) / (1 - bald_rate)
    attrs.update(Wavy_Hair=int(wavy), Straight_Hair=int(straight), Bald=int(bald),
                 Bangs=int(bangs))


def _sample_beard_attributes(rng: np.random.Generator, male: bool, attrs: dict[str, int]
                             ) -> None:
    """Facial hair for men only: beard (No_Beard = 0), then goatee and moustache among the
    bearded, stubble among the others, sideburns independently."""
    beard_rate = 1 - positive_rate("No_Beard")
    beard = male and rng.random() < beard_rate / P_MALE
    goatee = beard and rng.random() < positive_rate("Goatee") / beard_rate
    mustache = beard and rng.random() < positive_rate("Mustache") / beard_rate
    stubble = male and not beard and (
        rng.random() < positive_rate("5_o_Clock_Shadow") / (P_MALE - beard_rate))
    sideburns = male and rng.random() < _rate_given_gender("Sideburns", True)
    attrs.update({"No_Beard": int(not beard), "Goatee": int(goatee), "Mustache": int(mustache),
                  "5_o_Clock_Shadow": int(stubble), "Sideburns": int(sideburns)})


def _hair_colour_name(rng: np.random.Generator, attrs: dict[str, int]) -> str:
    for name in ("Gray", "Blond", "Black", "Brown"):
        if attrs[f"{name}_Hair"]:
            return name.lower()
    return ("auburn", "strawberry", "chestnut")[rng.integers(3)]


def _sample_marks(rng: np.random.Generator, attrs: dict[str, int], face_w: float,
                  eye_y: float, chin_y: float) -> np.ndarray:
    """Moles (everyone may have some), freckles (a few people), blemishes (the not-Attractive),
    each at a fixed place on the face so they identify the person."""
    marks = []
    for _ in range(rng.poisson(1.3)):
        x, y = rng.uniform(-0.75, 0.75) * face_w, rng.uniform(eye_y - 25, chin_y - 10)
        marks.append((_MOLE, x, y, rng.uniform(0.8, 1.6)))
    if rng.random() < 0.2:
        for _ in range(rng.integers(15, 35)):
            x = rng.uniform(-0.6, 0.6) * face_w
            marks.append((_FRECKLE, x, eye_y + rng.uniform(6, 22), rng.uniform(0.6, 0.9)))
    if not attrs["Attractive"]:
        for _ in range(rng.poisson(3)):
            x, y = rng.uniform(-0.7, 0.7) * face_w, rng.uniform(eye_y - 20, chin_y - 8)
            marks.append((_BLEMISH, x, y, rng.uniform(0.9, 1.5)))
    return np.array(marks, dtype=float).reshape(-1, 4)


# ---------------------------------------------------------------------------------------------
# Per-image parameters


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


# ---------------------------------------------------------------------------------------------
# Geometry: one transform for every drawn point and every landmark

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


# ---------------------------------------------------------------------------------------------
# Drawing

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


@dataclass(frozen=True)
class _Style:
    """Cosmetic choices of one image that carry no label (colours, shapes of accessories)."""

    clothes: np.ndarray
    accent: np.ndarray           # tie, hat
    lipstick: np.ndarray
    makeup: np.ndarray
    frame: np.ndarray
    round_glasses: bool
    sunglasses: bool
    hat_brim: bool
    hoops: bool
    gold: bool

    @classmethod
    def sample(cls, rng: np.random.Generator) -> _Style:
        lipsticks = np.array([[178, 30, 52], [200, 70, 96], [150, 40, 60], [190, 90, 90]])
        return cls(
            clothes=rng.uniform(20, 235, 3),
            accent=rng.uniform(20, 235, 3),
            lipstick=lipsticks[rng.integers(len(lipsticks))] + rng.normal(0, 8, 3),
            makeup=np.array([[120, 80, 140], [110, 80, 60], [70, 90, 130]])[rng.integers(3)],
            frame=np.array([[25, 25, 28], [90, 60, 40], [170, 170, 175]])[rng.integers(3)],
            round_glasses=bool(rng.random() < 0.5),
            sunglasses=bool(rng.random() < 0.25),
            hat_brim=bool(rng.random() < 0.5),
            hoops=bool(rng.random() < 0.5),
            gold=bool(rng.random() < 0.5),
        )


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


def _draw_body(paint: _Painter, f: Identity, at: dict[str, int], style: _Style) -> None:
    w, c = f.face_w, f.chin_y
    neck = np.array([[-0.55 * w, 0.5 * c], [0.55 * w, 0.5 * c], [0.62 * w, c + 60],
                     [-0.62 * w, c + 60]])
    paint.fill(neck, f.skin * 0.86)
    top = c + 26
    body = np.array([[-0.62 * w, top], [-(w + 45), top + 18], [-(w + 85), top + 120],
                     [w + 85, top + 120], [w + 45, top + 18], [0.62 * w, top],
                     [0, top + 22]])
    paint.fill(body, style.clothes)
    if at["Wearing_Necktie"]:
        collar = np.array([[-0.62 * w, top], [0, top + 22], [0.62 * w, top], [0.3 * w, top + 14],
                           [0, top + 4], [-0.3 * w, top + 14]])
        paint.fill(collar, (236, 236, 232))
        knot = np.array([[-4.0, top + 2], [4.0, top + 2], [3.0, top + 9], [-3.0, top + 9]])
        blade = np.array([[-3.0, top + 9], [3.0, top + 9], [7.0, top + 70], [0, top + 78],
                          [-7.0, top + 70]])
        paint.fill(blade, style.accent)
        paint.fill(knot, style.accent * 0.8)
    if at["Wearing_Necklace"]:
        metal = (212, 175, 55) if style.gold else (205, 205, 212)
        chain = _ellipse(0, c + 10, 0.5 * w, 14, 20, 0.15 * np.pi, 0.85 * np.pi)
        paint.stroke(chain, metal, 1.6)
        paint.fill(_ellipse(0, c + 25.5, 2.2, 2.6, 12), metal)


def _head_outline(f: Identity, grow: float = 0.0, n: int = 40) -> np.ndarray:
    """The face contour: an elliptic cranium over a superellipse jaw, grown by ``grow`` px."""
    up = np.linspace(np.pi, 2 * np.pi, n // 2, endpoint=False)
    upper = np.stack([(f.face_w + grow) * np.cos(up), (f.face_top + grow) * np.sin(up)], 1)
    lo = np.linspace(0, np.pi, n // 2 + 1)
    c, s = np.cos(lo), np.sin(lo)
    e = 2 / f.jaw_n
    lower = np.stack([(f.face_w + grow) * np.sign(c) * np.abs(c) ** e * (1 - f.jaw_taper * s**2),
                      (f.chin_y + grow) * s**e], 1)
    return np.vstack([upper, lower])


def _wave(f: Identity, y: np.ndarray, amplitude: float) -> np.ndarray:
    if f.hair_style == "straight":
        return 0 * y
    freq = 0.18 if f.hair_style == "wavy" else 0.55
    return amplitude * np.sin(freq * y + f.strands[0])


def _draw_hair_back(paint: _Painter, f: Identity, at: dict[str, int]) -> None:
    if at["Bald"]:
        for side in (-1, 1):   # a fringe over the ears is all that is left
            fringe = np.array([[side * (f.face_w + 1), f.eye_y - 16],
                               [side * (f.face_w + 2.5), f.ear_y + 7]])
            paint.stroke(fringe, f.hair_rgb, 5)
        return
    w, v = f.face_w + f.hair_volume, f.hair_volume
    top = _ellipse(0, -6, w, f.face_top - 6 + v, 24, np.pi, 2 * np.pi)
    end = {"short": f.ear_y - 4, "medium": f.chin_y - 4, "long": f.chin_y + 60}[f.hair_len]
    flare = {"short": -4.0, "medium": 2.0, "long": 12.0}[f.hair_len]
    ys = np.linspace(-6, end, 8)
    right = np.stack([w + flare * np.linspace(0, 1, 8) + _wave(f, ys, 3.0), ys], 1)
    left = np.stack([-right[::-1, 0], ys[::-1]], 1)
    paint.fill(np.vstack([top, right, left]), f.hair_rgb)
    if f.hair_len != "short":
        for k, side in enumerate((-1, 1, -1, 1)):
            x = side * (w - 3 - 3 * k)
            strand = np.stack([x + _wave(f, ys, 2.0) + 0.5 * k, ys], 1)
            paint.stroke(strand, f.hair_rgb * 0.72, 1)


def _draw_ears(paint: _Painter, f: Identity) -> None:
    for side in (-1, 1):
        cx = side * (f.face_w + f.ear_w * 0.2)
        paint.fill(_ellipse(cx, f.ear_y, f.ear_w, f.ear_h, 20), f.skin * 0.94)
        inner = _ellipse(cx + side * 0.8, f.ear_y - 1, f.ear_w * 0.5, f.ear_h * 0.6, 10,
                         -0.5 * np.pi, 0.5 * np.pi)
        inner[:, 0] = cx + side * np.abs(inner[:, 0] - cx)
        paint.stroke(inner, f.skin * 0.72, 1)


def _draw_face(paint: _Painter, f: Identity, at: dict[str, int], shot: Shot, style: _Style
               ) -> None:
    skin = f.skin
    paint.fill(_head_outline(f), skin)
    if at["Double_Chin"]:
        chin = _ellipse(0, f.chin_y - 2, 0.42 * f.face_w, 8, 14, 0, np.pi)
        paint.fill(chin, skin * 0.96, depth=1)
        paint.stroke(chin, skin * 0.78, 1, depth=1)
    _draw_skin_marks(paint, f, at, shot, style)
    for side in (-1, 1):
        _draw_eye(paint, f, at, shot, style, side)
        _draw_brow(paint, f, shot, side)
    _draw_nose(paint, f, at)
    _draw_mouth(paint, f, at, shot, style)
    _draw_facial_hair(paint, f, at)


def _draw_skin_marks(paint: _Painter, f: Identity, at: dict[str, int], shot: Shot,
                     style: _Style) -> None:
    skin, w, ey = f.skin, f.face_w, f.eye_y
    for side in (-1, 1):
        if at["High_Cheekbones"]:
            paint.fill(_ellipse(side * 0.56 * w, ey + 10, 9, 4.5, 16, rot=side * 0.3),
                       np.minimum(skin * 1.15, 255), alpha=0.55)
            paint.stroke(np.array([[side * 0.9 * w, ey + 14], [side * 0.5 * w, ey + 23]]),
                         skin * 0.8, 1.2)
        if at["Rosy_Cheeks"]:
            paint.fill(_ellipse(side * 0.52 * w, ey + 18, 8, 7, 16), (226, 92, 104), alpha=0.35)
        if at["Heavy_Makeup"]:
            paint.fill(_ellipse(side * 0.58 * w, ey + 15, 8, 5, 16), (214, 110, 120), alpha=0.3)
        # Smiling deepens the fold from the nose wing to beyond the mouth corner.
        fold = np.array([[side * (f.nose_w + 1), f.tip_y],
                         [side * (f.mouth_w + 3 + 2 * shot.smile), f.mouth_y + 3]])
        strength = 0.9 - 0.1 * shot.smile - 0.06 * f.wrinkles
        paint.stroke(fold, skin * strength, 1, depth=3)
        if f.wrinkles:
            corner = side * (f.eye_dx + f.eye_w + 1.5)
            for k in (-1, 0, 1):
                crow = np.array([[corner, ey + k], [corner + side * 4, ey + 2.5 * k]])
                paint.stroke(crow, skin * (0.86 - 0.08 * f.wrinkles), 1)
    if f.wrinkles and not at["Bangs"]:
        for k in range(3):
            y = f.hairline + 7 + 4.5 * k
            line = np.stack([np.linspace(-0.45 * w, 0.45 * w, 7),
                             y + 0.8 * np.sin(np.linspace(0, 3, 7) + k)], 1)
            paint.stroke(line, skin * (0.88 - 0.08 * f.wrinkles), 1)
    colours = {_MOLE: (72, 46, 36), _FRECKLE: skin * 0.78, _BLEMISH: skin * (1.0, 0.78, 0.78)}
    for kind, x, y, r in f.details:
        paint.fill(_ellipse(x, y, r, r, 8), colours[int(kind)])


def _eye_outline(f: Identity, shot: Shot) -> tuple[np.ndarray, np.ndarray, float]:
    """Upper and lower lid (eye-local, untilted) and the eye's half height; smiles squint."""
    t = np.linspace(-1.0, 1.0, 13)
    h = f.eye_h * (1 - 0.25 * shot.smile)
    upper = np.stack([f.eye_w * t, -h * (1 - t**2) ** 0.8], 1)
    lower = np.stack([f.eye_w * t, 0.7 * h * (1 - t**2) ** 0.9], 1)
    return upper, lower, h


def _draw_eye(paint: _Painter, f: Identity, at: dict[str, int], shot: Shot, style: _Style,
              side: int) -> None:
    centre = _eye_centres(f)[(side + 1) // 2]
    upper, lower, h = _eye_outline(f, shot)
    tilt = -side * math.radians(f.eye_tilt)
    rot = np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])

    def place(pts: np.ndarray) -> np.ndarray:
        return pts @ rot.T + centre

    def clipped_disc(r: float) -> np.ndarray:
        # A disc cut by the lids, so narrow eyes show a slit of iris.
        disc = _ellipse(0, 0, r, r, 16)
        t = np.clip(disc[:, 0] / f.eye_w, -1, 1)
        top, bottom = -h * (1 - t**2) ** 0.8, 0.7 * h * (1 - t**2) ** 0.9
        disc[:, 1] = np.clip(disc[:, 1], top, bottom)
        return disc

    if at["Heavy_Makeup"]:
        lid = np.vstack([upper, upper[::-1] + (0, -4.5)])
        paint.fill(place(lid), style.makeup, depth=_EYE_DEPTH, alpha=0.45)
    if at["Bags_Under_Eyes"]:
        bag = np.vstack([lower + (0, 1.5), lower[::-1] + (0, 4.5)])
        paint.fill(place(bag), f.skin * 0.68, depth=_EYE_DEPTH, alpha=0.55)
    paint.fill(place(np.vstack([upper, lower[::-1]])), (236, 232, 226), depth=_EYE_DEPTH)
    paint.fill(place(clipped_disc(f.iris_r)), f.iris_rgb, depth=_EYE_DEPTH)
    paint.fill(place(clipped_disc(0.45 * f.iris_r)), _PUPIL_RGB, depth=_EYE_DEPTH)
    liner = 2.2 if at["Heavy_Makeup"] else 1.2
    paint.stroke(place(upper), (28, 22, 22) if at["Heavy_Makeup"] else f.skin * 0.32, liner,
                 depth=_EYE_DEPTH)
    paint.stroke(place(lower), f.skin * 0.72, 1, depth=_EYE_DEPTH)


def _draw_brow(paint: _Painter, f: Identity, shot: Shot, side: int) -> None:
    s = np.linspace(0.0, 1.0, 9)
    inner, outer = f.eye_dx - f.eye_w - 1.5, f.eye_dx + f.eye_w + 2.5
    x = side * (inner + (outer - inner) * s)
    base = f.eye_y + (f.eye_asym if side > 0 else 0) - f.brow_gap - shot.brow_raise
    y = base - f.brow_arch * np.sin(np.pi * s**0.75) + f.brow_slope * s
    half = f.brow_thick * (1 - 0.45 * s) / 2
    paint.fill(np.vstack([np.stack([x, y - half], 1), np.stack([x, y + half], 1)[::-1]]),
               f.brow_rgb, depth=1.5)


def _draw_nose(paint: _Painter, f: Identity, at: dict[str, int]) -> None:
    skin, tip, nw = f.skin, f.tip_y, f.nose_w
    for side in (-1, 1):
        ridge = np.array([[side * 3.0, f.eye_y + 3], [side * 3.5, tip - 8],
                          [side * 0.75 * nw, tip - 1.5]])
        paint.stroke(ridge, skin * 0.84, 1, depth=np.array([4.0, 8.0, 8.0]))
        wing = _ellipse(side * 0.62 * nw, tip + 0.5, 0.4 * nw, 3.2, 10, -0.5 * np.pi,
                        0.5 * np.pi)
        wing[:, 0] = side * np.abs(wing[:, 0])
        paint.stroke(wing, skin * 0.72, 1, depth=8)
        paint.fill(_ellipse(side * 0.33 * nw, tip + 2.4, 1.2 + 0.1 * nw, 1.0, 10), skin * 0.36,
                   depth=9)
    if at["Pointy_Nose"]:
        vee = np.array([[-2.5, tip - 4], [0, tip + 1.5], [2.5, tip - 4]])
        paint.stroke(vee, skin * 0.8, 1, depth=_NOSE_DEPTH)
        paint.fill(_ellipse(0, tip - 1.5, 1.4, 1.8, 10), np.minimum(skin * 1.15, 255),
                   depth=_NOSE_DEPTH)
    else:
        paint.fill(_ellipse(0, tip - 1, 2.8, 2.2, 12), np.minimum(skin * 1.1, 255),
                   depth=_NOSE_DEPTH, alpha=0.6)


def _draw_mouth(paint: _Painter, f: Identity, at: dict[str, int], shot: Shot,
                style: _Style) -> None:
    x, upper_out, upper_in, lower_in, lower_out, depth = _mouth_curves(f, shot)
    lip = style.lipstick if at["Wearing_Lipstick"] else f.lip_rgb
    outline = np.vstack([np.stack([x, upper_out], 1), np.stack([x, lower_out], 1)[::-1]])
    paint.fill(outline, lip, depth=np.concatenate([depth, depth[::-1]]))
    if shot.mouth_open > 0:
        inside = np.vstack([np.stack([x, upper_in], 1), np.stack([x, lower_in], 1)[::-1]])
        both = np.concatenate([depth, depth[::-1]])
        paint.fill(inside, (72, 26, 32), depth=both)
        if shot.smile > 0.4:
            teeth = np.vstack([np.stack([x, upper_in], 1),
                               np.stack([x, 0.55 * upper_in + 0.45 * lower_in], 1)[::-1]])
            paint.fill(teeth, (238, 236, 226), depth=both)
    else:
        paint.stroke(np.stack([x, upper_in], 1), f.lip_rgb * 0.55, 1, depth=depth)


def _draw_facial_hair(paint: _Painter, f: Identity, at: dict[str, int]) -> None:
    colour = f.hair_rgb * 0.85
    lip_bottom = f.mouth_y + f.lip_lower + 1.5
    if not at["No_Beard"] or at["5_o_Clock_Shadow"]:
        jaw = _head_outline(f, grow=1.5, n=60)
        jaw = jaw[(jaw[:, 1] > f.ear_y) & (np.arange(len(jaw)) >= 30)]
        half = np.array([[0.9 * f.face_w, f.ear_y + 2], [0.78 * f.face_w, f.mouth_y - 6],
                         [f.mouth_w + 3, f.mouth_y - 1], [0.6 * f.mouth_w, lip_bottom + 1.5]])
        inner = np.vstack([half * (-1, 1), [[0, lip_bottom + 2.5]], half[::-1]])
        region = np.vstack([jaw[::-1], inner[::-1]])   # along the jaw, then back above it
        if at["No_Beard"]:
            paint.fill(region, (70, 70, 76), depth=1, alpha=0.3)
        else:
            paint.fill(region, colour, depth=1)
    if at["Goatee"]:
        w = 0.55 * f.mouth_w
        goatee = np.array([[-w, lip_bottom], [w, lip_bottom], [0.75 * w, f.chin_y - 1],
                           [0, f.chin_y + 1.5], [-0.75 * w, f.chin_y - 1]])
        paint.fill(goatee, colour * 0.8, depth=2)
    if at["Mustache"]:
        x = np.linspace(-1, 1, 9)
        top = f.tip_y + 4.5 + 2.5 * x**2
        bottom = f.mouth_y - f.lip_upper - 0.6 + 1.5 * x**2
        paint.fill(np.vstack([np.stack([(f.mouth_w + 1.5) * x, top], 1),
                              np.stack([(f.mouth_w + 1.5) * x, bottom], 1)[::-1]]),
                   colour * 0.8, depth=3)
    if at["Sideburns"]:
        for side in (-1, 1):
            strip = np.array([[side * (f.face_w - 6), f.eye_y - 14], [side * (f.face_w + 0.5),
                              f.eye_y - 14], [side * (f.face_w + 0.5), f.ear_y + 10],
                              [side * (f.face_w - 5), f.ear_y + 10]])
            paint.fill(strip, colour)


def _hairline(f: Identity, at: dict[str, int], n: int = 13) -> np.ndarray:
    u = np.linspace(-1.0, 1.0, n)
    y = f.hairline + 12 * u**2
    if at["Receding_Hairline"]:   # temples recede further than the centre: an M
        y = y - 10 * np.exp(-(((np.abs(u) - 0.55) / 0.18) ** 2))
    return np.stack([0.93 * f.face_w * u, y], 1)


def _draw_hair_front(paint: _Painter, f: Identity, at: dict[str, int]) -> None:
    if at["Bald"]:
        return
    line = _hairline(f, at)
    w, v = f.face_w + f.hair_volume, f.hair_volume
    temple = line[0, 1]
    start = math.asin(min(1.0, max(-1.0, (temple + 6) / (f.face_top - 6 + v))))
    cap = _ellipse(0, -6, w, f.face_top - 6 + v, 24, np.pi - start, 2 * np.pi + start)
    paint.fill(np.vstack([cap, line[::-1]]), f.hair_rgb)
    if at["Bangs"]:
        x = np.linspace(-0.9, 0.9, 10) * f.face_w
        jag = 2.0 * np.sin(f.strands[:10] * 3)
        bottom = f.eye_y - f.brow_gap - 5 + jag + _wave(f, x, 1.5)
        paint.fill(np.vstack([line, np.stack([x, bottom], 1)[::-1]]), f.hair_rgb)
    crown = np.array([0.0, -(f.face_top + 0.5 * v)])
    shades = (f.hair_rgb * 0.72, np.minimum(f.hair_rgb * 1.18 + 10, 255))
    for k, start_pt in enumerate(line[1:-1:2]):
        ys = np.linspace(start_pt[1], crown[1], 6)
        xs = np.linspace(start_pt[0], 0.4 * start_pt[0], 6) + _wave(f, ys, 1.5)
        paint.stroke(np.stack([xs, ys], 1), shades[k % 2], 1)


def _draw_earrings(paint: _Painter, f: Identity, style: _Style) -> None:
    metal = (212, 175, 55) if style.gold else (205, 205, 212)
    for side in (-1, 1):
        lobe = (side * (f.face_w + f.ear_w * 0.2), f.ear_y + f.ear_h - 1)
        if style.hoops:
            paint.stroke(_ellipse(lobe[0], lobe[1] + 3.5, 3.2, 3.6, 14), metal, 1.3)
        else:
            paint.fill(_ellipse(lobe[0], lobe[1] + 1, 1.8, 1.8, 10), metal)


def _draw_hat(paint: _Painter, f: Identity, style: _Style) -> None:
    v = f.hair_volume
    bottom = f.hairline + 4
    crown = _ellipse(0, bottom, f.face_w + v + 3, bottom + f.face_top + v + 10, 24, np.pi,
                     2 * np.pi)
    paint.fill(crown, style.accent, depth=2)
    if style.hat_brim:
        paint.fill(_ellipse(0, bottom, f.face_w + v + 16, 5, 24), style.accent * 0.8, depth=3)
    else:
        band = np.array([[-(f.face_w + v + 3), bottom - 6], [f.face_w + v + 3, bottom - 6]])
        paint.stroke(band, style.accent * 0.75, 5, depth=2)


def _draw_glasses(paint: _Painter, f: Identity, shot: Shot, style: _Style) -> None:
    depth = 8.0
    rx, ry = f.eye_w + 4.5, f.eye_h + 5.5
    for side, (cx, cy) in zip((-1, 1), _eye_centres(f), strict=True):
        if style.round_glasses:
            lens = _ellipse(cx, cy, rx, ry, 24)
        else:
            u = np.array([-1, 1, 1, -1]) * rx
            lens = np.stack([cx + u, cy + np.array([-1, -1, 1, 1]) * ry], 1)
        if style.sunglasses:
            paint.fill(lens, (28, 28, 34), depth=depth, alpha=0.85)
        paint.stroke(lens, style.frame, 1.6, depth=depth, closed=True)
        temple = np.array([[cx + side * rx, cy - 1], [side * (f.face_w + 1), f.ear_y - 4]])
        paint.stroke(temple, style.frame, 1.6, depth=np.array([depth, 0.0]))
    bridge = _ellipse(0, f.eye_y - 1, f.eye_dx - rx, 2.5, 8, np.pi, 2 * np.pi)
    paint.stroke(bridge, style.frame, 1.6, depth=depth)


def _draw_hand(paint: _Painter, f: Identity, rng: np.random.Generator) -> None:
    skin = f.skin * rng.uniform(0.9, 1.05)
    cx = rng.uniform(-0.6, 0.6) * f.face_w
    cy = rng.uniform(f.mouth_y - 10, f.chin_y + 10)
    angle = rng.uniform(-0.6, 0.6)
    palm = _ellipse(cx, cy + 12, 17, 21, 20, rot=angle)
    paint.fill(palm, skin, depth=10)
    for k in range(4):
        a = angle + (k - 1.5) * 0.22
        fx, fy = cx + 26 * math.sin(a), cy + 12 - 26 * math.cos(a)
        finger = _ellipse(fx, fy, 4.2, 13, 14, rot=a)
        paint.fill(finger, skin, depth=10)
        paint.stroke(finger, skin * 0.8, 1, depth=10, closed=True)


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


# ---------------------------------------------------------------------------------------------
# Images per identity, pairs, splits: cheap, no rendering


def _quantile_levels(n: int) -> np.ndarray:
    """Evenly spaced levels in (0, 1): counts taken at these quantiles have the distribution's
    mean and tail even for a few hundred identities, which independent draws would not."""
    return (np.arange(n) + 0.5) / n


def casia_image_counts(cfg: SynthConfig) -> np.ndarray:
    """Images per CASIA identity (in identity order): a log-normal rounded and clipped to
    [min_images, max_images], its location solved so the counts average ``mean_images``."""
    part = cfg.casia
    z = np.array([_NORMAL.inv_cdf(u) for u in _quantile_levels(part.identities)])

    def counts(mu: float) -> np.ndarray:
        return np.clip(np.rint(np.exp(mu + part.log_sigma * z)), part.min_images,
                       part.max_images)

    lo = math.log(part.min_images) - 6 * part.log_sigma
    hi = math.log(part.max_images) + 6 * part.log_sigma
    for _ in range(60):   # the mean grows with mu: bisect
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if counts(mid).mean() < part.mean_images else (lo, mid)
    order = _rng(cfg.seed, "casia", _STREAM_LAYOUT).permutation(part.identities)
    return counts(hi)[order].astype(int)


_LFW_POWER = 2.2   # P(k images) ~ k^-2.2 for k >= 2: LFW has 779 / 291 / 187 people with 2 / 3 / 4


def lfw_image_counts(cfg: SynthConfig) -> np.ndarray:
    """Images per LFW identity (in identity order): one image for ``1 - multi_fraction`` of
    them, a power law on [2, max_images] for the rest."""
    part = cfg.lfw
    k = np.arange(2, part.max_images + 1)
    p = k ** -_LFW_POWER
    cdf = (1 - part.multi_fraction) + part.multi_fraction * np.cumsum(p / p.sum())
    levels = _quantile_levels(part.identities)
    multi = k[np.minimum(np.searchsorted(cdf, levels), len(k) - 1)]
    counts = np.where(levels < 1 - part.multi_fraction, 1, multi)
    return counts[_rng(cfg.seed, "lfw", _STREAM_LAYOUT).permutation(part.identities)]


@dataclass(frozen=True)
class LfwLayout:
    """LFW identities, their image counts and the pairs of pairs.txt (identity indices are
    0-based, image numbers 1-based as in the file)."""

    names: tuple[str, ...]
    counts: np.ndarray
    folds: tuple[tuple[int, ...], ...]                         # identities of each fold
    same: tuple[tuple[tuple[int, int, int], ...], ...]         # per fold: (id, i, j)
    diff: tuple[tuple[tuple[int, int, int, int], ...], ...]    # per fold: (id1, i, id2, j)

    def identities_in_pairs(self) -> list[int]:
        used = {p[0] for fold in self.same for p in fold}
        used |= {i for fold in self.diff for p in fold for i in (p[0], p[2])}
        return sorted(used)


def lfw_layout(cfg: SynthConfig) -> LfwLayout:
    """Identities, image counts, identity-disjoint folds and pairs of the LFW part.

    Raises ValueError when a fold cannot hold ``pairs_per_fold`` distinct same (or different)
    pairs.
    """
    part = cfg.lfw
    counts = lfw_image_counts(cfg)
    names = tuple(f"Synth_Person_{i + 1:04d}" for i in range(part.identities))
    rng = _rng(cfg.seed, "lfw", _STREAM_LAYOUT, 1)
    # Deal the multi-image identities largest first in snake order, so every fold can make a
    # similar number of same pairs; then the single-image ones.
    multi = sorted(np.flatnonzero(counts > 1), key=lambda i: -counts[i])
    single = rng.permutation(np.flatnonzero(counts == 1)).tolist()
    folds: list[list[int]] = [[] for _ in range(part.folds)]
    for rank, i in enumerate(multi):
        lap, pos = divmod(rank, part.folds)
        folds[pos if lap % 2 == 0 else part.folds - 1 - pos].append(int(i))
    for rank, i in enumerate(single):
        folds[rank % part.folds].append(int(i))

    same, diff = [], []
    for number, members in enumerate(folds, start=1):
        same.append(_same_pairs(rng, counts, members, part.pairs_per_fold, number))
        diff.append(_diff_pairs(rng, counts, members, part.pairs_per_fold, number))
    return LfwLayout(names, counts, tuple(tuple(sorted(f)) for f in folds), tuple(same),
                     tuple(diff))


def _same_pairs(rng: np.random.Generator, counts: np.ndarray, members: list[int], wanted: int,
                fold: int) -> tuple[tuple[int, int, int], ...]:
    people = [i for i in members if counts[i] > 1]
    possible = sum(counts[i] * (counts[i] - 1) // 2 for i in people)
    if possible < wanted:
        raise ValueError(
            f"SynthFaces LFW part: fold {fold} has {len(people)} identities with >= 2 images, "
            f"{possible} possible same pairs, but lfw.pairs_per_fold = {wanted}; raise "
            f"lfw.identities or lfw.multi_fraction, or lower lfw.pairs_per_fold")
    # One pair per person per round, so a few people with many images do not fill the fold.
    queues = []
    for i in rng.permutation(people):
        n = counts[i]
        combos = [(int(i), a, b) for a in range(1, n + 1) for b in range(a + 1, n + 1)]
        queues.append([combos[k] for k in rng.permutation(len(combos))])
    rounds = (queue[r] for r in range(max(map(len, queues))) for queue in queues
              if r < len(queue))
    return tuple(sorted(next(rounds) for _ in range(wanted)))


def _diff_pairs(rng: np.random.Generator, counts: np.ndarray, members: list[int], wanted: int,
                fold: int) -> tuple[tuple[int, int, int, int], ...]:
    sizes = counts[members]
    possible = (sizes.sum() ** 2 - (sizes**2).sum()) // 2
    if possible < wanted:
        raise ValueError(
            f"SynthFaces LFW part: fold {fold} allows only {possible} different pairs but "
            f"lfw.pairs_per_fold = {wanted}; raise lfw.identities or lower lfw.pairs_per_fold")
    if possible < 20 * wanted:   # few candidates: enumerate them rather than retry draws
        combos = [(a, i, b, j) for x, a in enumerate(members) for b in members[x + 1:]
                  for i in range(1, counts[a] + 1) for j in range(1, counts[b] + 1)]
        picked = {tuple(int(v) for v in combos[k])
                  for k in rng.choice(len(combos), wanted, replace=False)}
    else:
        picked = set()
        while len(picked) < wanted:
            a, b = sorted(rng.choice(members, 2, replace=False))
            picked.add((int(a), int(rng.integers(1, counts[a] + 1)), int(b),
                        int(rng.integers(1, counts[b] + 1))))
    return tuple(sorted(picked))


def pairs_text(layout: LfwLayout) -> str:
    """pairs.txt in LFW's format: ``folds<TAB>pairs_per_fold``, then per fold its same pairs
    (``name i j``) and its different pairs (``name1 i name2 j``), tab-separated."""
    per_fold = len(layout.same[0])
    lines = [f"{len(layout.folds)}\t{per_fold}"]
    names = layout.names
    for same, diff in zip(layout.same, layout.diff, strict=True):
        lines += [f"{names[p]}\t{i}\t{j}" for p, i, j in same]
        lines += [f"{names[a]}\t{i}\t{names[b]}\t{j}" for a, i, b, j in diff]
    return "\n".join(lines) + "\n"


def casia_identities(cfg: SynthConfig, lfw: LfwLayout | None = None
                     ) -> list[tuple[str, str, int]]:
    """(name, part of its identity stream, index in it) per CASIA identity. The first
    ``casia.overlap`` are LFW people from pairs.txt: same name, same face, other images."""
    overlap = cfg.casia.overlap
    shared: list[int] = []
    if overlap:
        lfw = lfw or lfw_layout(cfg)
        shared = lfw.identities_in_pairs()[:overlap]
        if len(shared) < overlap:
            raise ValueError(f"SynthFaces config: casia.overlap = {overlap} but only "
                             f"{len(shared)} LFW identities are in pairs.txt")
    people = [(lfw.names[j], "lfw", j) for j in shared]
    people += [(f"Synth_Casia_{i + 1:05d}", "casia", i)
               for i in range(overlap, cfg.casia.identities)]
    return people


# CelebA's file order: training images first, then validation, then test (identity-disjoint).
_CELEBA_SPLIT = np.array([162770, 19867, 19962]) / 202599


def celeba_layout(cfg: SynthConfig) -> list[tuple[int, int, int]]:
    """(identity, image index of that identity, partition 0/1/2) for each CelebA file in order."""
    part = cfg.celeba
    rng = _rng(cfg.seed, "celeba", _STREAM_LAYOUT)
    # About images / identities each (CelebA: ~20, spread like its counts), at least one.
    weights = np.exp(0.35 * np.array([_NORMAL.inv_cdf(u)
                                      for u in _quantile_levels(part.identities)]))
    extra = (part.images - part.identities) * weights / weights.sum()
    counts = 1 + np.floor(extra).astype(int)
    short = part.images - counts.sum()
    counts[np.argsort(np.floor(extra) - extra, kind="stable")[:short]] += 1
    counts = counts[rng.permutation(part.identities)]

    order = rng.permutation(part.identities)
    cumulative = np.cumsum(counts[order]) / part.images
    n = part.identities
    train_end = int(np.clip(np.searchsorted(cumulative, _CELEBA_SPLIT[0]) + 1, 1, n - 2))
    val_end = int(np.clip(np.searchsorted(cumulative, _CELEBA_SPLIT[:2].sum()) + 1,
                          train_end + 1, n - 1))
    files = []
    for split, people in enumerate(np.split(order, [train_end, val_end])):
        images = [(int(i), k, split) for i in people for k in range(counts[i])]
        files += [images[k] for k in rng.permutation(len(images))]
    return files


# ---------------------------------------------------------------------------------------------
# Writers

_LANDMARK_NAMES = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                   "leftmouth_x leftmouth_y rightmouth_x rightmouth_y")


class _Job(NamedTuple):
    identity: Identity
    part: str          # image stream
    key: int           # identity index in the image stream
    image: int
    layout: str
    nuisance: Nuisance
    seed: int


def _render_job(job: _Job) -> tuple[bytes, np.ndarray, list[int]]:
    rng = _rng(job.seed, job.part, _STREAM_IMAGE, job.key, job.image)
    shot = sample_shot(job.identity, rng, job.nuisance)
    rgb, landmarks = render(job.identity, shot, job.layout)
    return encode_jpeg(rgb, shot.jpeg_quality), landmarks, attribute_row(job.identity, shot)


def _one_thread() -> None:
    cv2.setNumThreads(1)   # the pool already uses every core


def _render_all(jobs: list[_Job], workers: int
                ) -> Iterator[tuple[bytes, np.ndarray, list[int]]]:
    if workers <= 1:
        yield from map(_render_job, jobs)
        return
    with Pool(workers, initializer=_one_thread) as pool:
        yield from pool.imap(_render_job, jobs, chunksize=32)


def _write_images(root: Path, paths: list[str], jobs: list[_Job], workers: int,
                  decimals: int) -> tuple[list[str], list[str]]:
    """Render and write the images; return their landmark and attribute lines."""
    landmark_lines, attribute_lines = [], []
    for rel, (jpeg, landmarks, row) in zip(paths, _render_all(jobs, workers), strict=True):
        with atomic_path(root / rel) as tmp:
            tmp.write_bytes(jpeg)
        if decimals:
            coords = " ".join(f"{v:.{decimals}f}" for v in landmarks.ravel())
        else:   # CelebA's own file has integer landmarks
            coords = " ".join(f"{round(v):4d}" for v in landmarks.ravel())
        landmark_lines.append(f"{rel} {coords}")
        attribute_lines.append(rel + "".join(f" {v:2d}" for v in row))
    return landmark_lines, attribute_lines


def _write_text(path: Path, lines: Sequence[str]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines))
    return path


def _attribute_file(rows: list[str]) -> list[str]:
    return [str(len(rows)), " ".join(ATTRIBUTES), *rows]


def write_part(part: str, root: Path, cfg: SynthConfig, workers: int = 1) -> list[Path]:
    """Write one part ("lfw", "casia" or "celeba") as the real dataset's un-archived tree under
    ``root``; return the top-level paths written (image folder first)."""
    root = Path(root)
    writers = {"lfw": _write_lfw, "casia": _write_casia, "celeba": _write_celeba}
    if part not in writers:
        raise ValueError(f"unknown SynthFaces part {part!r}; known: {list(writers)}")
    return writers[part](root, cfg, workers)


def _write_lfw(root: Path, cfg: SynthConfig, workers: int) -> list[Path]:
    layout = lfw_layout(cfg)
    jobs, paths = [], []
    for i, name in enumerate(layout.names):
        identity = make_identity(cfg.seed, "lfw", i, name, cfg.identity_spread)
        for k in range(layout.counts[i]):
            jobs.append(_Job(identity, "lfw", i, k, "wild", cfg.nuisance, cfg.seed))
            paths.append(f"{name}/{name}_{k + 1:04d}.jpg")
    landmarks, attributes = _write_images(root / "lfw", paths, jobs, workers, decimals=2)
    return [root / "lfw",
            _write_text(root / "pairs.txt", [pairs_text(layout).rstrip("\n")]),
            _write_text(root / "lfw_landmarks.txt", [f"image {_LANDMARK_NAMES}", *landmarks]),
            _write_text(root / "lfw_attributes.txt", _attribute_file(attributes))]


def _write_casia(root: Path, cfg: SynthConfig, workers: int) -> list[Path]:
    people = casia_identities(cfg)
    counts = casia_image_counts(cfg)
    jobs, paths = [], []
    for i, (name, source, index) in enumerate(people):
        identity = make_identity(cfg.seed, source, index, name, cfg.identity_spread)
        for k in range(counts[i]):
            jobs.append(_Job(identity, "casia", i, k, "wild", cfg.nuisance, cfg.seed))
            paths.append(f"{i + 1:07d}/{k + 1:03d}.jpg")
    base = root / "CASIA-WebFace"
    landmarks, _ = _write_images(base, paths, jobs, workers, decimals=2)
    _write_text(base / "names.txt", [f"{i + 1:07d} {name}" for i, (name, _, _) in
                                     enumerate(people)])
    _write_text(base / "casia_landmarks.txt", [f"image {_LANDMARK_NAMES}", *landmarks])
    return [base]


def _write_celeba(root: Path, cfg: SynthConfig, workers: int) -> list[Path]:
    files = celeba_layout(cfg)
    identities = [make_identity(cfg.seed, "celeba", i, f"{i + 1}", cfg.identity_spread)
                  for i in range(cfg.celeba.identities)]
    jobs = [_Job(identities[i], "celeba", i, k, "celeba", cfg.nuisance, cfg.seed)
            for i, k, _ in files]
    paths = [f"{n:06d}.jpg" for n in range(1, len(files) + 1)]
    landmarks, attributes = _write_images(root / "img_align_celeba", paths, jobs, workers,
                                          decimals=0)
    count = str(len(files))
    return [root / "img_align_celeba",
            _write_text(root / "list_attr_celeba.txt", _attribute_file(attributes)),
            _write_text(root / "list_landmarks_align_celeba.txt",
                        [count, _LANDMARK_NAMES, *landmarks]),
            _write_text(root / "list_eval_partition.txt",
                        [f"{p} {split}" for p, (_, _, split) in zip(paths, files, strict=True)]),
            _write_text(root / "identity_CelebA.txt",
                        [f"{p} {i + 1}" for p, (i, _, _) in zip(paths, files, strict=True)])]


# Fixed archive timestamps (2000-01-01) so the same config gives byte-identical archives.
_ARCHIVE_MTIME = 946684800
_ZIP_DATE = (2000, 1, 1, 0, 0, 0)
MIRROR_FILES: tuple[str, ...] = (
    "lfw.tgz", "pairs.txt", "lfw_landmarks.txt", "lfw_attributes.txt", "CASIA-WebFace.zip",
    "img_align_celeba.zip", "list_attr_celeba.txt", "list_landmarks_align_celeba.txt",
    "list_eval_partition.txt", "identity_CelebA.txt",
)


def write_mirror(out_dir: Path, cfg: SynthConfig, workers: int = 1) -> dict[str, str]:
    """Write every part, packed as the real datasets ship them, plus ``SHA256SUMS``, into
    ``out_dir``; return {file name: sha256}.

    Everything is built in a hidden folder inside ``out_dir`` and renamed into place at the end,
    SHA256SUMS last, so an interrupted run leaves no partial file under a final name.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".synthfaces-", dir=out_dir))
    try:
        for part in PARTS:
            write_part(part, work, cfg, workers)
        staged = {name: work / name for name in MIRROR_FILES}
        _pack_tgz(work, "lfw", staged["lfw.tgz"])
        _pack_zip(work, "CASIA-WebFace", staged["CASIA-WebFace.zip"])
        _pack_zip(work, "img_align_celeba", staged["img_align_celeba.zip"])
        sums = {name: sha256_of(path) for name, path in sorted(staged.items())}
        sums_file = _write_text(work / "SHA256SUMS", [f"{h}  {n}" for n, h in sums.items()])
        for name, path in staged.items():
            os.replace(path, out_dir / name)
        os.replace(sums_file, out_dir / "SHA256SUMS")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return sums


def _members(root: Path, top: str) -> list[tuple[str, Path]]:
    """(archive name, path) of ``root/top`` and everything under it, sorted by name."""
    base = root / top
    return sorted((p.relative_to(root).as_posix(), p) for p in [base, *base.rglob("*")])


def _pack_tgz(root: Path, top: str, dest: Path) -> None:
    # filename="" and mtime=0 keep the temp name and the clock out of the gzip header.
    with open(dest, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, path in _members(root, top):
            info = tarfile.TarInfo(name)
            info.mtime = _ARCHIVE_MTIME
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, path.stat().st_size
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)


def _pack_zip(root: Path, top: str, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w") as zf:
        for name, path in _members(root, top):
            is_dir = path.is_dir()
            info = zipfile.ZipInfo(name + "/" if is_dir else name, _ZIP_DATE)
            info.create_system = 3   # Unix, whatever the host, for the same bytes everywhere
            if is_dir:
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = 0o644 << 16
                # JPEGs do not compress; the text files do.
                info.compress_type = (zipfile.ZIP_STORED if name.endswith(".jpg")
                                      else zipfile.ZIP_DEFLATED)
                zf.writestr(info, path.read_bytes())
