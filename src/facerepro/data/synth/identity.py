"""Identities: everything about a person that stays the same across their images.

Canonical face frame: pixels at the nominal scale of a 250x250 image, origin near the nose
bridge, y down; an unposed face has ~38 px between the eye centres (LFW-like).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facerepro.data.synth.attributes import (
    _NORMAL,
    _THRESHOLDED,
    P_MALE,
    _rate_given_gender,
    positive_rate,
)
from facerepro.data.synth.config import SynthConfig
from facerepro.data.synth.streams import _STREAM_IDENTITY, _rng

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
