"""Losses by the method name a run's config gives; ``loss_options`` are their keyword
arguments (the schema fills in each method's paper values)."""

from __future__ import annotations

import numpy as np
from torch import nn

from facerepro.losses.a_softmax import ASoftmaxLoss
from facerepro.losses.attribute_softmax import AttributeSoftmaxLoss
from facerepro.losses.center import CenterLoss
from facerepro.losses.clmle import MultiTaskCLMLELoss
from facerepro.losses.ident_verif import IdentVerifLoss, LayerwiseIdentVerifLoss
from facerepro.losses.l_softmax import LSoftmaxLoss
from facerepro.losses.pair_logistic import PairLogisticLoss
from facerepro.losses.softmax import SoftmaxLoss
from facerepro.losses.triplet import TripletLoss

# Losses with a classifier over the training identities take (embedding_dim, num_classes).
_CLASSIFIERS = {"softmax": SoftmaxLoss, "a_softmax": ASoftmaxLoss, "l_softmax": LSoftmaxLoss,
                "softmax_contrastive": IdentVerifLoss, "softmax_center": CenterLoss}


def build(method: str, embedding_dim: int, labels: np.ndarray, options: dict | None = None,
          supervised_layers: int = 1) -> nn.Module:
    """The method's loss for the training ``labels``: (n,) contiguous class ids, or (n, A) 0/1
    attributes. ``supervised_layers`` is how many feature layers of the net the layer-wise
    ``ident_verif`` supervises (DeepID2+: FC-1..FC-4)."""
    options = options or {}
    labels = np.asarray(labels)
    if method == "attribute_softmax":
        return AttributeSoftmaxLoss(embedding_dim, labels.sum(0), len(labels), **options)
    if method == "clmle":
        return MultiTaskCLMLELoss(labels, **options)
    num_classes = int(labels.max()) + 1
    if method in _CLASSIFIERS:
        return _CLASSIFIERS[method](embedding_dim, num_classes, **options)
    if method == "ident_verif":
        return LayerwiseIdentVerifLoss([embedding_dim] * supervised_layers, num_classes,
                                       **options)
    if method == "triplet":
        return TripletLoss(**options)
    if method == "pair_logistic":
        return PairLogisticLoss(**options)
    raise KeyError(f"unknown method {method!r}; known: {', '.join(_CLASSIFIERS)}, ident_verif, "
                   f"triplet, pair_logistic, clmle, attribute_softmax")
