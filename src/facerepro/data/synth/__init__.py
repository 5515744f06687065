"""SynthFaces: procedural faces written in the real datasets' on-disk formats.

The embedded default dataset, so that the whole pipeline runs with no network. Each identity is
a latent vector (face shape, eyes, brows, nose, mouth, ears, skin, hair, marks, beard, ...) and
each image adds nuisance (pose, light, expression, clutter, blur, noise, JPEG, occluders). The
40 CelebA attributes are rendered, at CelebA's imbalance levels (CLMLE, docs/papers.md section 5),
and every image carries its exact five landmarks. Every random stream is derived from
``SeedSequence((seed, part, stream, identity, image))``, so output does not depend on order or
process count, and the same seed gives byte-identical files.

Difficulty of the defaults, measured on the synthetic LFW protocol (all pairs of pairs.txt,
threshold from the 9 other folds): 150-component pixel PCA fit on CASIA crops, cosine, on
56x48 crops aligned by the ground-truth landmarks: 68.5% (gray) / 70.5% (RGB); on a fixed
centre crop instead: 59.6% / 61.2%. Trained shallow baselines (PCA + LDA 83.9%, HOG + colour
+ LDA 91.0%) stay well below 97%; lower ``identity_spread`` or raise ``nuisance.appearance``
if a learned model separates the identities too easily.

The settings and their defaults are listed in :mod:`facerepro.data.synth.config`. Modules, each
importing only modules listed before it: ``attributes`` (the 40 attributes and their rates),
``config``, ``streams`` (random streams), ``identity`` (a person), ``shot`` (one image's
attributes and nuisance), ``geometry`` (face frame to pixels), ``painter`` (drawing
primitives), ``person`` (the person and what they wear), ``render`` (one image), ``layouts``
(images per identity, pairs, splits), ``writers`` (the files and archives).

Public API: :class:`SynthConfig` (and its groups), :func:`make_identity`, :func:`sample_shot`,
:func:`render`, :func:`encode_jpeg`, :func:`attribute_row`, :func:`casia_image_counts`,
:func:`lfw_image_counts`, :func:`lfw_layout`, :func:`pairs_text`, :func:`casia_identities`,
:func:`ytf_layout`, :func:`splits_text`, :func:`video_shots` (the YouTube Faces part),
:func:`celeba_layout`, :func:`write_part`, :func:`write_mirror`.
"""

from __future__ import annotations

from facerepro.data.synth.attributes import (
    ATTRIBUTES,
    IMAGE_ATTRIBUTES,
    IMBALANCE_LEVEL,
    MAJORITY_POSITIVE,
    P_MALE,
    positive_rate,
)
from facerepro.data.synth.config import (
    CasiaPart,
    CelebaPart,
    LfwPart,
    Nuisance,
    SynthConfig,
    YtfPart,
)
from facerepro.data.synth.geometry import CELEBA_EYES, CELEBA_SIZE, WILD_SIZE

# Not public API: a test checks the drawn pupils against it.
from facerepro.data.synth.identity import _PUPIL_RGB as _PUPIL_RGB
from facerepro.data.synth.identity import Identity, make_identity
from facerepro.data.synth.layouts import (
    LfwLayout,
    YtfLayout,
    casia_identities,
    casia_image_counts,
    celeba_layout,
    lfw_image_counts,
    lfw_layout,
    pairs_text,
    splits_text,
    ytf_layout,
)
from facerepro.data.synth.render import encode_jpeg, render
from facerepro.data.synth.shot import Shot, attribute_row, sample_shot, video_shots
from facerepro.data.synth.streams import PARTS

# Not public API: a test checks the archive timestamps against it.
from facerepro.data.synth.writers import _ARCHIVE_MTIME as _ARCHIVE_MTIME
from facerepro.data.synth.writers import MIRROR_FILES, write_mirror, write_part

__all__ = [
    "ATTRIBUTES", "CELEBA_EYES", "CELEBA_SIZE", "IMAGE_ATTRIBUTES", "IMBALANCE_LEVEL",
    "MAJORITY_POSITIVE", "MIRROR_FILES", "PARTS", "P_MALE", "WILD_SIZE", "CasiaPart",
    "CelebaPart", "Identity", "LfwLayout", "LfwPart", "Nuisance", "Shot", "SynthConfig",
    "attribute_row", "casia_identities", "casia_image_counts", "celeba_layout", "encode_jpeg",
    "lfw_image_counts", "lfw_layout", "make_identity", "pairs_text", "positive_rate", "render",
    "sample_shot", "write_mirror", "write_part",
    "YtfLayout", "YtfPart", "splits_text", "video_shots", "ytf_layout",
]
