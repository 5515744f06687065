"""FaceNet triplet loss with online negative mining inside the batch.

Schroff, Kalenichenko, Philbin, CVPR 2015 (equation numbers as in docs/papers.md):

    ||f(a) - f(p)||^2 + alpha < ||f(a) - f(n)||^2                          (Eq. 1)
    L = sum_i [ ||f(a_i) - f(p_i)||^2 - ||f(a_i) - f(n_i)||^2 + alpha ]_+    (Eq. 2)

with ``||f(x)||_2 = 1`` and squared Euclidean distances. Sec. 3.2: every anchor-positive pair
of the batch is used; its negative is semi-hard,

    ||f(a) - f(p)||^2 < ||f(a) - f(n)||^2                                  (Eq. 3)

and inside the margin (Eq. 1 violated), the closest such one. ``"hardest"`` takes the argmin
negative instead (the choice FaceNet says collapses training to f = 0 early on), ``"vgg"``
a negative drawn uniformly among those violating the margin (Parkhi, Vedaldi, Zisserman,
"Deep Face Recognition", BMVC 2015).

The reported loss is Eq. 2 divided by the number of ordered anchor-positive pairs in the
batch, pairs without a triplet counting as zero, so the scale does not follow how many
triplets mining happens to find.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from facerepro.loss_options import NEGATIVES, TripletOptions


def _check_negatives(negatives: str) -> None:
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives is {negatives!r}; allowed: {', '.join(NEGATIVES)}")


def _anchor_positive_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    anchor, positive = same.nonzero(as_tuple=True)
    return anchor, positive


def _squared_distances(x: torch.Tensor) -> torch.Tensor:
    sq = (x * x).sum(1)
    # The expansion can go slightly negative by cancellation for near-identical rows.
    return (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0)


def mine_triplets(embeddings: torch.Tensor, labels: torch.Tensor,
                  margin: float = TripletOptions.margin,
                  negatives: str = TripletOptions.negatives,
                  generator: torch.Generator | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row indices ``(anchor, positive, negative)`` of the mined triplets.

    Every ordered anchor-positive pair (``a != p``, same label) gets at most one negative:

    - ``"semihard"``: the closest negative with ``d(a, n) > d(a, p)``. The pair yields no
      triplet when there is none, or when that negative already satisfies the margin
      (``d(a, n) >= d(a, p) + margin``): its loss, and that of every farther negative, is 0.
    - ``"hardest"``: the closest negative, kept only if ``d(a, n) < d(a, p) + margin``
      (a triplet with nonzero loss).
    - ``"vgg"``: a negative drawn uniformly among those with ``d(a, n) < d(a, p) + margin``;
      none, no triplet. Draws come from ``generator``, or the global torch RNG when it is
      None, on the embeddings' device.

    Distances are squared Euclidean between L2-normalised embeddings.
    """
    _check_negatives(negatives)
    with torch.no_grad():
        x = embeddings.detach()
        x = F.normalize(x.to(torch.promote_types(x.dtype, torch.float32)), dim=1)
        dist = _squared_distances(x)
        negative_mask = labels[:, None] != labels[None, :]
        # Non-negatives sort after every negative, so the first n_neg[a] entries of an
        # anchor's row are its negatives in ascending distance.
        sorted_neg, order = dist.masked_fill(~negative_mask, float("inf")).sort(dim=1)
        anchor, positive = _anchor_positive_pairs(labels)
        # Per anchor row, searchsorted needs a same-shaped batch of queries; the (B, B) query
        # matrix keeps memory at B^2 where per-pair rows would cost pairs x B.
        inside = torch.searchsorted(sorted_neg, dist + margin)[anchor, positive]
        if negatives == "semihard":
            rank = torch.searchsorted(sorted_neg, dist, right=True)[anchor, positive]
            keep = rank < inside
        elif negatives == "hardest":
            rank = torch.zeros_like(inside)
            keep = inside > 0
        else:
            u = torch.rand(len(anchor), generator=generator, device=embeddings.device)
            # u * inside can round up to inside in float32; the clamp keeps it a violator.
            rank = torch.minimum((u * inside).long(), (inside - 1).clamp_min(0))
            keep = inside > 0
        # Filtering first: a pair without a negative may have a rank past the row's end.
        anchor, positive, rank = anchor[keep], positive[keep], rank[keep]
        return anchor, positive, order[anchor, rank]


def triplet_loss(embeddings: torch.Tensor, anchor: torch.Tensor, positive: torch.Tensor,
                 negative: torch.Tensor, margin: float = TripletOptions.margin) -> torch.Tensor:
    """Eq. 2 summed over the given triplets, with gradient to ``embeddings``."""
    x = F.normalize(embeddings, dim=1)
    # index_select, not x[anchor]: rows repeat across triplets, and the backward of indexing
    # (index_put_ with accumulate) adds them with float atomics on several CPU threads, in an
    # order that changes run to run; index_select's backward (index_add_) adds in index order.
    a, p, n = (x.index_select(0, i) for i in (anchor, positive, negative))
    # Differences rather than the 2 - 2 cos expansion: exact, and the gradient is that of Eq. 2.
    d_ap = (a - p).pow(2).sum(1)
    d_an = (a - n).pow(2).sum(1)
    return (d_ap - d_an + margin).clamp_min(0).sum()


class TripletLoss(nn.Module):
    """Eq. 2 over mined triplets, divided by the number of anchor-positive pairs."""

    def __init__(self, margin: float = TripletOptions.margin,
                 negatives: str = TripletOptions.negatives) -> None:
        super().__init__()
        _check_negatives(negatives)
        self.margin, self.negatives = margin, negatives
        self.last_triplets = 0

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pairs = len(_anchor_positive_pairs(labels)[0])
        if pairs == 0:
            raise ValueError("the batch has no two images of one identity, so no anchor-positive "
                             "pair: the triplet loss needs the identity sampler (sampler: "
                             "identity, images_per_identity >= 2)")
        anchor, positive, negative = mine_triplets(embeddings, labels, self.margin,
                                                   self.negatives)
        self.last_triplets = len(anchor)
        return triplet_loss(embeddings, anchor, positive, negative, self.margin) / pairs
