"""Each method's ``loss_options``: one frozen dataclass per loss, whose fields are the options.

The config schema (:func:`facerepro.config.load_schema`) is generated from the fields' types,
defaults (the papers' values) and the JSON-schema keywords :func:`option` gives them, and each
loss's constructor in :mod:`facerepro.losses` takes its defaults from the same dataclass. They
live apart from the losses, which import torch, so that validating a config (the Snakefile does
it on every ``snakemake`` call) stays light.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


def option(default: Any, description: str = "", *, paper_value: bool = True,
           **schema: Any) -> Any:
    """A dataclass field: ``default`` and the JSON-schema keywords a config value must meet
    (``minimum=0``, ``enum=[...]``). ``paper_value=False`` marks a default of ours where the
    paper gives none: the report then does not call another value a deviation."""
    if description:
        schema["description"] = description
    if not paper_value:
        schema["x-no-paper-value"] = True
    return dataclasses.field(default=default, metadata=schema)


@dataclass(frozen=True)
class SoftmaxOptions:
    bias: bool = option(True, "Classifier bias (SphereFace Table 6 step C removes it).")


@dataclass(frozen=True)
class CenterOptions(SoftmaxOptions):
    # Eq. 5 and Algorithm 1, with Wen et al.'s face-recognition values.
    center_weight: float = option(0.003, "lambda of softmax + lambda L_C (Wen et al. 2016)",
                                  minimum=0)
    center_alpha: float = option(0.5, "Centre update rate alpha.", exclusiveMinimum=0,
                                 maximum=1)


@dataclass(frozen=True)
class IdentVerifOptions(SoftmaxOptions):
    # DeepID2 Eq. 3, with the lambda DeepID2 trained with.
    verification_weight: float = option(0.05, "lambda of Ident + lambda Verif (DeepID2)",
                                        minimum=0)
    margin: float = option(1.0, "Contrastive margin m on the L2 distance.", paper_value=False,
                           exclusiveMinimum=0)
    # DeepID2 Eq. 2 puts m on the raw distance; the net can then grow its features until no
    # different-person pair is inside m, and the term stops acting.
    margin_scale: str = option(
        "absolute", "absolute = m is a distance (DeepID2 Eq. 2); feature_norm = m times the "
        "batch's mean feature L2 norm (detached), so growing the features cannot leave the "
        "margin behind.", enum=["absolute", "feature_norm"])


@dataclass(frozen=True)
class LayerwiseIdentVerifOptions(IdentVerifOptions):
    layerwise: bool = option(
        True, "Supervise every FC-n (DeepID2+); false = only FC-4's gradients reach the "
        "convolutions (Fig. 3 \"no layer-wise supervision\"; FC-1..3 still learn on detached "
        "maps, so every layer can be read out).")


ALLOWED_M = (1, 2, 3, 4)


@dataclass(frozen=True)
class MarginOptions:
    """A-Softmax's and L-Softmax's options; the lambda schedule is the released code's."""

    # SphereFace Eq. 6-7; m = 4 is its main model (Tables 3-4).
    m: int = option(4, "Angular margin; m = 1 with a_softmax is the modified softmax.",
                    enum=list(ALLOWED_M))
    anneal: bool = option(True, "lambda annealing of the target logit (released code)")
    # Integers as the schema always wrote them: the defaults enter every run's digest
    # (facerepro.config.digest), in which 1000 and 1000.0 differ.
    lambda_base: float = option(1000, minimum=0)
    lambda_gamma: float = option(0.12, minimum=0)
    lambda_power: float = option(1, minimum=0)
    lambda_min: float = option(5, minimum=0)


NEGATIVES = ("semihard", "hardest", "vgg")


@dataclass(frozen=True)
class TripletOptions:
    # alpha of FaceNet Eq. 1-2, 0.2 in the paper.
    margin: float = option(0.2, "alpha.", exclusiveMinimum=0)
    negatives: str = option(
        "semihard", "semihard (FaceNet: the closest negative farther than the positive); "
        "hardest (collapses early, as FaceNet warns); vgg (a random margin violator, VGG-Face).",
        enum=list(NEGATIVES))


TECHNIQUES = ("rounding", "expected", "std")


@dataclass(frozen=True)
class PairLogisticOptions:
    technique: str = option(
        "rounding", "The way through the rounding (Compact int32 Sec. 2.1): rounding = the "
        "rounding-error term held constant (straight-through); expected = the expected loss "
        "over random bits by dynamic programming (needs bits 1); std = the loss plus omega x "
        "the batch std of every output.", enum=list(TECHNIQUES))
    # Eq. 2-3 without values in the paper: the threshold beta / alpha is a quarter of the
    # largest distance of 32 one-bit codes.
    alpha: float = option(0.25, "Scale of the code distance d in L(alpha d - beta).",
                          paper_value=False, exclusiveMinimum=0)
    beta: float = option(2.0, "Offset in L(alpha d - beta).", paper_value=False)
    omega: float = option(-0.1, "Weight of the std term (technique std); negative saturates.")


@dataclass(frozen=True)
class AttributeSoftmaxOptions:
    cost_sensitive: bool = option(
        True, "Weight each attribute's two classes by their inverse frequency in the training "
        "set (CLMLE Table 5 \"cost-sensitive\"); false = plain softmax.")


CENTROIDS = ("mean", "unit")


@dataclass(frozen=True)
class CLMLEOptions:
    a1: float = option(
        0.5, "Margin between classes as a fraction of its bound 1 - cos(2 pi / C) (Eq. 9; the "
        "paper grid-searches 0 .. bound and gives no value).", paper_value=False, minimum=0,
        maximum=1)
    a2: float = option(
        0.5, "Margin between the clusters of one class as a fraction of its bound "
        "1 - cos(2 pi L_c / L), per class c (Eq. 9; grid-searched in the paper).",
        paper_value=False, minimum=0, maximum=1)
    cost_sensitive: bool = option(True, "Weight each sample by the inverse frequency of its "
                                  "class in the batch (Table 7 ablation = false).")
    # Sec. 3.3: a batch cluster's mu_m is the mean of its 20 samples' (unit) features.
    centroids: str = option(
        "mean", "Centroid mu_m of each cluster of the batch in Eq. 9: mean = the plain mean of "
        "its samples' unit features (Sec. 3.3); unit = that mean normalised to unit length, "
        "like the spherical k-means centroids.", enum=list(CENTROIDS))
    # Sec. 3.3 and Eq. 9: 1 / (M l) sum_i w_i L_i, w_i the inverse frequency of i's class.
    normalise_weights: bool = option(
        False, "With cost_sensitive: divide sum_i w_i L_i by sum_i w_i (the mean over the "
        "batch's classes of each class's mean loss, whatever the number of classes in the "
        "batch); false = Eq. 9's 1 / (M l) sum_i w_i L_i with w_i = M l / n_c(i), the inverse "
        "of the share of the batch of i's class (the sum over the batch's classes of each "
        "class's mean loss).")


@dataclass(frozen=True)
class CosFaceOptions:
    """CosFace's large margin cosine loss (Wang et al., CVPR 2018), Eq. 4."""

    # Sec. 4 of the paper (as we recall its text): s = 64, and m = 0.35 for its main results
    # (its own ablation varies m from 0 to 0.45).
    s: float = option(64.0, "Scale s of the normalised logits s cos(theta) (CosFace s = 64).",
                      exclusiveMinimum=0)
    m: float = option(0.35, "Cosine margin m subtracted from the target cosine (CosFace 0.35).",
                      minimum=0)


ARC_FALLBACKS = ("linear", "clamp", "none")


@dataclass(frozen=True)
class ArcFaceOptions:
    """ArcFace's additive angular margin loss (Deng et al., CVPR 2019), Eq. 3."""

    # Sec. 3 of the paper (as we recall its text): s = 64 and m = 0.5.
    s: float = option(64.0, "Scale s of the normalised logits (ArcFace s = 64).",
                      exclusiveMinimum=0)
    m: float = option(0.5, "Angular margin m added to the target angle, radians (ArcFace 0.5).",
                      minimum=0, exclusiveMaximum=3.141592653589793)
    fallback: str = option(
        "linear", "Target logit where theta_y + m > pi, i.e. theta_y > pi - m, where "
        "cos(theta_y + m) would rise again with theta_y: linear = cos(theta_y) - m sin(m) (the "
        "authors' released code); clamp = cos(pi) = -1; none = cos(theta_y + m) as Eq. 3 and "
        "the paper's Algorithm 1 write it.", enum=list(ARC_FALLBACKS))


# The options dataclass of each method (facerepro.losses.LOSSES holds the same methods' losses).
OPTIONS: dict[str, type] = {
    "softmax": SoftmaxOptions,
    "a_softmax": MarginOptions,
    "l_softmax": MarginOptions,
    "softmax_contrastive": IdentVerifOptions,
    "softmax_center": CenterOptions,
    "triplet": TripletOptions,
    "pair_logistic": PairLogisticOptions,
    "ident_verif": LayerwiseIdentVerifOptions,
    "attribute_softmax": AttributeSoftmaxOptions,
    "clmle": CLMLEOptions,
    "cosface": CosFaceOptions,
    "arcface": ArcFaceOptions,
}
