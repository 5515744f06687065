"""CLMLE's attribute net: the DeepID2 trunk with one feature layer per attribute.

Huang, Li, Loy, Tang (TPAMI 2019, Sec. 5.3 and Table 1): "DeepID2 net plus one 64-d FC layer
per attribute", every head trained by Eq. 9 on its own attribute in one multi-task net, each
attribute classified from its own head. The trunk is :class:`DeepID2Net` (its 160-d layer);
head ``a`` is ``Linear(160, embedding_dim)``. The output is the heads side by side,
(B, attributes * embedding_dim), so features files and protocols see one flat vector;
``per_attribute`` gives the (B, attributes, embedding_dim) view the losses use.
"""

from __future__ import annotations

import torch
from torch import nn

from facerepro.models.deepid import DeepID2Net

TRUNK_DIM = 160      # DeepID2's feature layer


class AttributeNet(nn.Module):
    def __init__(self, input_size: tuple[int, int] = (55, 47), embedding_dim: int = 64,
                 maps: tuple[int, int, int, int] = (20, 40, 60, 80),
                 attributes: int = 40) -> None:
        super().__init__()
        self.trunk = DeepID2Net(input_size, TRUNK_DIM, maps)
        # One (attributes * embedding_dim) linear map is the heads stacked: head a owns rows
        # a*d .. (a+1)*d - 1, with no weight shared between heads.
        self.heads = nn.Linear(TRUNK_DIM, attributes * embedding_dim)
        self.attributes, self.embedding_dim = attributes, embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.trunk(x))

    def per_attribute(self, flat: torch.Tensor) -> torch.Tensor:
        """(B, attributes * d) output -> (B, attributes, d)."""
        return flat.view(len(flat), self.attributes, self.embedding_dim)
