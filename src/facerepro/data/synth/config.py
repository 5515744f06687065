"""SynthFaces settings: :class:`SynthConfig` and its groups, checked when built.

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
ytf.identities [100]       YouTube-Faces-like identities (their own identity stream: no
                           training part holds them).
ytf.min_videos [2], ytf.max_videos [3]  videos per identity, uniform (YTF: 2.15 on average).
ytf.frames [10]            frames per video (YTF: 181 on average; 10 keeps the default run's
                           feature extraction cheap).
ytf.folds [10]             folds of splits.txt (identity-disjoint, as in YTF).
ytf.pairs_per_fold [15]    same-person video pairs and, again, different-person pairs per fold
                           (YTF: 250).
ytf.motion [0.3]           within-video spread of each continuous nuisance (pose, light,
                           expression, blur, noise, JPEG quality) as a fraction of its spread
                           between photos: a video's frames stay closer than two photos.
ytf.smoothness [0.8]       correlation of a nuisance between consecutive frames (the random
                           walk's AR(1) coefficient; 0 = independent frames).
facescrub.identities [10]  FaceScrub-like probe identities of the MegaFace protocol (their own
                           identity stream: in no other part).
facescrub.images_per_identity [4]  photos of each probe identity (>= 2: a rank-1 pair needs two).
distractors.identities [100]  MegaFace-like distractor people (their own identity stream: in no
                           other part).
distractors.images [100]   distractor photos, dealt over the people as evenly as possible
                           (MegaFace: 1,027,060 photos of 690,572 people).
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
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from facerepro.data.synth.attributes import _BLURRY_SIGMA


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
class YtfPart:
    identities: int = 100
    min_videos: int = 2
    max_videos: int = 3
    frames: int = 10
    folds: int = 10
    pairs_per_fold: int = 15
    motion: float = 0.3
    smoothness: float = 0.8

    def __post_init__(self) -> None:
        _require(self.folds >= 2, "ytf.folds must be >= 2")
        _require(self.identities >= 2 * self.folds,
                 "ytf.identities must be >= 2 * ytf.folds (two identities per fold at least)")
        _require(2 <= self.min_videos <= self.max_videos,
                 "ytf.min_videos must be >= 2 (a same pair needs two videos) and <= "
                 "ytf.max_videos")
        _require(self.frames >= 1, "ytf.frames must be >= 1")
        _require(self.pairs_per_fold >= 1, "ytf.pairs_per_fold must be >= 1")
        _require(self.motion >= 0, "ytf.motion must be >= 0")
        _require(0 <= self.smoothness < 1, "ytf.smoothness must be in [0, 1)")


@dataclass(frozen=True)
class FacescrubPart:
    identities: int = 10
    images_per_identity: int = 4

    def __post_init__(self) -> None:
        _require(self.identities >= 1, "facescrub.identities must be >= 1")
        _require(self.images_per_identity >= 2,
                 "facescrub.images_per_identity must be >= 2 (a probe needs a second photo)")


@dataclass(frozen=True)
class DistractorsPart:
    identities: int = 100
    images: int = 100

    def __post_init__(self) -> None:
        _require(self.identities >= 1, "distractors.identities must be >= 1")
        _require(self.images >= self.identities,
                 "distractors.images must be >= distractors.identities (one photo each at least)")


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
    ytf: YtfPart = field(default_factory=YtfPart)
    facescrub: FacescrubPart = field(default_factory=FacescrubPart)
    distractors: DistractorsPart = field(default_factory=DistractorsPart)
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
                            "ytf": YtfPart, "facescrub": FacescrubPart,
                            "distractors": DistractorsPart, "nuisance": Nuisance}


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
