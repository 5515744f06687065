"""Losses by the method name a run's config gives; ``loss_options`` are their keyword
arguments, the fields of the method's options dataclass in :data:`OPTIONS` (whose defaults, the
paper's values, the config schema fills in; :mod:`facerepro.loss_options` defines them).

Every entry of :data:`LOSSES` is called as ``factory(embedding_dim, labels,
supervised_layers, **options)``; :func:`build` documents the arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from facerepro.loss_options import OPTIONS as OPTIONS
from facerepro.losses.a_softmax import ASoftmaxLoss
from facerepro.losses.arcface import ArcFaceLoss
from facerepro.losses.attribute_softmax import AttributeSoftmaxLoss
from facerepro.losses.center import CenterLoss
from facerepro.losses.clmle import MultiTaskCLMLELoss
from facerepro.losses.cosface import CosFaceLoss
from facerepro.losses.ident_verif import IdentVerifLoss, LayerwiseIdentVerifLoss
from facerepro.losses.l_softmax import LSoftmaxLoss
from facerepro.losses.pair_logistic import PairLogisticLoss
from facerepro.losses.softmax import SoftmaxLoss
from facerepro.losses.triplet import TripletLoss
from facerepro.registries import Registry

LossFactory = Callable[..., nn.Module]
LOSSES: Registry[LossFactory] = Registry("method")


def build(method: str, embedding_dim: int, labels: np.ndarray, options: dict | None = None,
          supervised_layers: int = 1) -> nn.Module:
    """The method's loss for the training ``labels``: (n,) contiguous class ids, or (n, A) 0/1
    attributes. ``supervised_layers`` is how many feature layers of the net the layer-wise
    ``ident_verif`` supervises (DeepID2+: FC-1..FC-4)."""
    return LOSSES[method](embedding_dim, np.asarray(labels), supervised_layers, **(options or {}))


def _num_classes(labels: np.ndarray) -> int:
    return int(labels.max()) + 1


def _classifier(loss: LossFactory) -> LossFactory:
    """A loss with a classifier over the training identities: ``loss(embedding_dim,
    num_classes, **options)``."""
    def factory(embedding_dim: int, labels: np.ndarray, supervised_layers: int,
                **options: Any) -> nn.Module:
        return loss(embedding_dim, _num_classes(labels), **options)
    return factory


def _options_only(loss: LossFactory) -> LossFactory:
    """A loss on the embeddings alone (pairs or triplets of the batch): ``loss(**options)``."""
    def factory(embedding_dim: int, labels: np.ndarray, supervised_layers: int,
                **options: Any) -> nn.Module:
        return loss(**options)
    return factory


LOSSES.register("softmax")(_classifier(SoftmaxLoss))
LOSSES.register("a_softmax")(_classifier(ASoftmaxLoss))
LOSSES.register("l_softmax")(_classifier(LSoftmaxLoss))
LOSSES.register("cosface")(_classifier(CosFaceLoss))
LOSSES.register("arcface")(_classifier(ArcFaceLoss))
LOSSES.register("softmax_contrastive")(_classifier(IdentVerifLoss))
LOSSES.register("softmax_center")(_classifier(CenterLoss))
LOSSES.register("triplet")(_options_only(TripletLoss))
LOSSES.register("pair_logistic")(_options_only(PairLogisticLoss))


@LOSSES.register("ident_verif")
def _ident_verif(embedding_dim: int, labels: np.ndarray, supervised_layers: int,
                 **options: Any) -> nn.Module:
    return LayerwiseIdentVerifLoss([embedding_dim] * supervised_layers, _num_classes(labels),
                                   **options)


@LOSSES.register("attribute_softmax")
def _attribute_softmax(embedding_dim: int, labels: np.ndarray, supervised_layers: int,
                       **options: Any) -> nn.Module:
    return AttributeSoftmaxLoss(embedding_dim, labels.sum(0), len(labels), **options)


@LOSSES.register("clmle")
def _clmle(embedding_dim: int, labels: np.ndarray, supervised_layers: int,
           **options: Any) -> nn.Module:
    return MultiTaskCLMLELoss(labels, **options)
