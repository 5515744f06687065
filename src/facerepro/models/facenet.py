"""FaceNet embedding nets (Schroff, Kalenichenko, Philbin, CVPR 2015), Tables 1-2.

``NN1`` is the Zeiler&Fergus net with 1x1 convolutions of Table 1 (220x220, 140M parameters);
``InceptionNN2`` is the GoogLeNet-style net of Table 2 (224x224, 7.5M parameters), which is
also NN3 (input 160x160) and NN4 (input 96x96, ``drop_5x5_late=True``). Both map
(B, 3, H, W) to unit-norm (B, embedding_dim) vectors, the paper's L2 layer (||f(x)|| = 1).

Every pooling and strided convolution is padded so that it maps n to ceil(n / 2): this
reproduces the sizes printed in the tables (220 -> 110 -> 55 -> 28 -> 14 -> 7 and 224 -> 112
-> 56 -> 28 -> 14 -> 7) and keeps any input size of about 32 pixels and up valid. ``width``
multiplies every channel count and hidden FC width (not the embedding) so that the same
architecture can run at CPU scale.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from facerepro.models.local_response_norm import LocalResponseNorm

# Table 1 rows in order; pool/rnorm rows carry no parameters. (name, #filters, kernel, stride)
_NN1_LAYERS: tuple[tuple[str, int, int, int], ...] = (
    ("conv1", 64, 7, 2), ("pool1", 0, 3, 2), ("rnorm1", 0, 0, 0),
    ("conv2a", 64, 1, 1), ("conv2", 192, 3, 1), ("rnorm2", 0, 0, 0), ("pool2", 0, 3, 2),
    ("conv3a", 192, 1, 1), ("conv3", 384, 3, 1), ("pool3", 0, 3, 2),
    ("conv4a", 384, 1, 1), ("conv4", 256, 3, 1),
    ("conv5a", 256, 1, 1), ("conv5", 256, 3, 1),
    ("conv6a", 256, 1, 1), ("conv6", 256, 3, 1), ("pool4", 0, 3, 2),
)
_NN1_MAXOUT_UNITS = 32 * 128    # fc1 and fc2 outputs are 1x32x128
_MAXOUT_PIECES = 2

# Table 2: (name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool, pool proj, stride).
# A 0 means the branch (or the projection after the pool) is absent.
_NN2_MODULES: tuple[tuple[str, int, int, int, int, int, str, int, int], ...] = (
    ("inception3a", 64, 96, 128, 16, 32, "max", 32, 1),
    ("inception3b", 64, 96, 128, 32, 64, "l2", 64, 1),
    ("inception3c", 0, 128, 256, 32, 64, "max", 0, 2),
    ("inception4a", 256, 96, 192, 32, 64, "l2", 128, 1),
    ("inception4b", 224, 112, 224, 32, 64, "l2", 128, 1),
    ("inception4c", 192, 128, 256, 32, 64, "l2", 128, 1),
    ("inception4d", 160, 144, 288, 32, 64, "l2", 128, 1),
    ("inception4e", 0, 160, 256, 64, 128, "max", 0, 2),
    ("inception5a", 384, 192, 384, 48, 128, "l2", 128, 1),
    ("inception5b", 384, 192, 384, 48, 128, "max", 128, 1),
)
# NN4 (96x96): "no 5x5 convolutions in the higher layers, as the receptive field is already
# too small there"; which layers is not stated. Following OpenFace's nn4 (Amos et al.), the
# 5x5 branches go in 5a and 5b, whose feature maps are 3x3 at a 96x96 input.
_LATE_MODULES = frozenset({"inception5a", "inception5b"})


def _scaled(channels: int, width: float) -> int:
    """Channels of a ``width``-scaled layer; 0 stays 0 (absent branch), otherwise at least 1."""
    return 0 if channels == 0 else max(1, round(channels * width))


def _halved(n: int) -> int:
    return (n + 1) // 2     # every downsampling step is padded to give ceil(n / 2)


def _conv_relu(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2), nn.ReLU(inplace=True))


def _max_pool(stride: int) -> nn.MaxPool2d:
    # Padding 1 (with -inf) rather than ceil_mode: ceil_mode gives 27, not Table 1's 28, at 55.
    return nn.MaxPool2d(3, stride, padding=1)


def _rnorm() -> LocalResponseNorm:
    # The paper only says "norm"/"rnorm"; these are the AlexNet/GoogLeNet (Caffe) settings.
    return LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


class _L2Pool(nn.Module):
    """3x3, stride-1 L2 pooling: the Euclidean norm of each window.

    Zero padding keeps the spatial size and leaves the norm of border windows unchanged.
    ``nn.LPPool2d`` takes the norm (sqrt of the sum of squares, as Torch7's SpatialLPPooling),
    which is 3x the root-mean-square; the 1x1 projection that always follows absorbs the
    scale. Its gradient is 0, not NaN, on all-zero windows, common after a ReLU.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.LPPool2d(2, 3, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.pad(x, (1, 1, 1, 1)))


class _Maxout(nn.Module):
    """Fully connected maxout layer (Goodfellow et al. 2013): max over ``pieces`` linear maps."""

    def __init__(self, in_features: int, units: int, pieces: int = _MAXOUT_PIECES) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, units * pieces)
        self.units, self.pieces = units, pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(1, (self.units, self.pieces)).amax(dim=2)


class _Inception(nn.Module):
    """Inception module: parallel 1x1, 1x1-3x3, 1x1-5x5 and pool(-1x1) branches, concatenated.

    With stride 2 (3c, 4e) the 3x3, 5x5 and pool branches downsample and, as in Table 2,
    there is neither a 1x1 branch nor a pool projection.
    """

    def __init__(self, in_channels: int, n1x1: int, n3x3_reduce: int, n3x3: int,
                 n5x5_reduce: int, n5x5: int, pool: str, pool_proj: int, stride: int) -> None:
        super().__init__()
        branches: list[nn.Module] = []
        self.out_channels = 0
        if n1x1:
            branches.append(_conv_relu(in_channels, n1x1, 1, stride))
            self.out_channels += n1x1
        for reduce, out, kernel in ((n3x3_reduce, n3x3, 3), (n5x5_reduce, n5x5, 5)):
            if out:
                branches.append(nn.Sequential(_conv_relu(in_channels, reduce, 1),
                                              _conv_relu(reduce, out, kernel, stride)))
                self.out_channels += out
        if pool == "l2" and stride != 1:
            raise ValueError("L2 pooling is only used in stride-1 modules")
        pooling: nn.Module = _max_pool(stride) if pool == "max" else _L2Pool()
        if pool_proj:
            branches.append(nn.Sequential(pooling, _conv_relu(in_channels, pool_proj, 1)))
            self.out_channels += pool_proj
        else:
            branches.append(pooling)
            self.out_channels += in_channels
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class _Embedder(nn.Module):
    """Shared skeleton: ``trunk`` (convolutional), ``head`` (to embedding_dim), L2 layer."""

    trunk: nn.Sequential
    head: nn.Sequential
    embedding_dim: int

    def _init_weights(self) -> None:
        # He init suits the ReLU/maxout stacks; there is no batch norm (the paper has none).
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.trunk(x)), dim=1)


class NN1(_Embedder):
    """FaceNet NN1 (Table 1): Zeiler&Fergus net with interleaved 1x1 convolutions.

    Paper: 220x220x3 input; conv1 7x7/2 64, pool1 3x3/2, rnorm1, conv2a 1x1 64, conv2 3x3 192,
    rnorm2, pool2, conv3a 1x1 192, conv3 3x3 384, pool3, conv4a 1x1 384, conv4 3x3 256,
    conv5a/conv5 and conv6a/conv6 (1x1 256, 3x3 256), pool4 (7x7x256), fc1 and fc2 maxout
    (p = 2, 32x128 outputs), fc7128, L2; ReLU after every convolution; 140M parameters.
    Here: the table's no-op "concat" row is omitted; rnorm is cross-channel LRN (size 5,
    alpha 1e-4, beta 0.75, not given in the paper); poolings use padding 1 so every stage gives
    ceil(n / 2); fc1's input size follows from ``input_size``. ``width`` multiplies every
    channel count and the maxout unit counts (pieces stay 2), not ``embedding_dim``.
    """

    def __init__(self, input_size: tuple[int, int] = (220, 220), embedding_dim: int = 128,
                 width: float = 1.0) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = 3
        height, width_px = input_size
        for name, filters, kernel, stride in _NN1_LAYERS:
            if name.startswith("conv"):
                layers[name] = _conv_relu(channels, _scaled(filters, width), kernel, stride)
                channels = _scaled(filters, width)
            elif name.startswith("pool"):
                layers[name] = _max_pool(stride)
            else:
                layers[name] = _rnorm()
            if stride == 2:
                height, width_px = _halved(height), _halved(width_px)
        self.trunk = nn.Sequential(layers)
        units = _scaled(_NN1_MAXOUT_UNITS, width)
        self.head = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(),
            fc1=_Maxout(channels * height * width_px, units),
            fc2=_Maxout(units, units),
            fc7128=nn.Linear(units, embedding_dim)))
        self.embedding_dim = embedding_dim
        self._init_weights()


class InceptionNN2(_Embedder):
    """FaceNet NN2 (Table 2), a GoogLeNet-style Inception net; NN3/NN4 at 160x160/96x96.

    Paper: 224x224x3 input; conv1 7x7/2 64, max pool 3x3/2 + norm, inception (2) (1x1 64,
    3x3 192), norm + max pool 3x3/2, inception 3a-3c, 4a-4e, 5a-5b with the table's branch
    widths and pooling (m = max, L2 = L2 pooling, 3x3; stride-2 modules 3c/4e have no 1x1
    branch and no pool projection), 7x7 avg pool, fully connected to 128, L2; 7.5M parameters.
    NN3 is the same net at 160x160; NN4 at 96x96 also drops the 5x5 convolutions "in the
    higher layers": ``drop_5x5_late=True`` removes them from 5a and 5b (the layers the paper
    leaves unnamed; chosen as in OpenFace's nn4, the 3x3-map stages at 96x96).
    Here: norm is LRN (size 5, alpha 1e-4, beta 0.75, as GoogLeNet); the final pool is
    adaptive so any input size works; no batch norm or auxiliary classifiers (the paper
    mentions neither); ``width`` multiplies every channel count, not ``embedding_dim``.
    """

    def __init__(self, input_size: tuple[int, int] = (224, 224), embedding_dim: int = 128,
                 width: float = 1.0, drop_5x5_late: bool = False) -> None:
        super().__init__()
        del input_size      # the adaptive average pool makes the layers size-independent
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        conv1 = _scaled(64, width)
        layers["conv1"] = _conv_relu(3, conv1, 7, 2)
        layers["pool1"] = _max_pool(2)
        layers["norm1"] = _rnorm()
        reduce2, channels = _scaled(64, width), _scaled(192, width)
        layers["inception2"] = nn.Sequential(_conv_relu(conv1, reduce2, 1),
                                             _conv_relu(reduce2, channels, 3))
        layers["norm2"] = _rnorm()
        layers["pool2"] = _max_pool(2)
        for name, *sizes, pool, proj, stride in _NN2_MODULES:
            if drop_5x5_late and name in _LATE_MODULES:
                sizes[3] = sizes[4] = 0
            module = _Inception(channels, *(_scaled(c, width) for c in sizes), pool,
                                _scaled(proj, width), stride)
            layers[name] = module
            channels = module.out_channels
        layers["avgpool"] = nn.AdaptiveAvgPool2d(1)
        self.trunk = nn.Sequential(layers)
        self.head = nn.Sequential(OrderedDict(
            flatten=nn.Flatten(), fc=nn.Linear(channels, embedding_dim)))
        self.embedding_dim = embedding_dim
        self._init_weights()
