"""FaceNet NN1 / NN2 (Inception) against the paper's Tables 1 and 2."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from facerepro.models.facenet import NN1, InceptionNN2, _L2Pool

# The "params" columns of Tables 1 and 2 as printed.
TABLE1_PARAMS = {"conv1": "9K", "conv2a": "4K", "conv2": "111K", "conv3a": "37K",
                 "conv3": "664K", "conv4a": "148K", "conv4": "885K", "conv5a": "66K",
                 "conv5": "590K", "conv6a": "66K", "conv6": "590K", "fc1": "103M",
                 "fc2": "34M", "fc7128": "524K"}
TABLE2_PARAMS = {"conv1": "9K", "inception2": "115K", "inception3a": "164K",
                 "inception3b": "228K", "inception3c": "398K", "inception4a": "545K",
                 "inception4b": "595K", "inception4c": "654K", "inception4d": "722K",
                 "inception4e": "717K", "inception5a": "1.6M", "inception5b": "1.6M",
                 "fc": "131K"}
# The "size-out" / "output size" columns, as (H, W, C) of each named layer's output.
TABLE1_SIZES = {"conv1": (110, 110, 64), "pool1": (55, 55, 64), "rnorm1": (55, 55, 64),
                "conv2a": (55, 55, 64), "conv2": (55, 55, 192), "rnorm2": (55, 55, 192),
                "pool2": (28, 28, 192), "conv3a": (28, 28, 192), "conv3": (28, 28, 384),
                "pool3": (14, 14, 384), "conv4a": (14, 14, 384), "conv4": (14, 14, 256),
                "conv5a": (14, 14, 256), "conv5": (14, 14, 256), "conv6a": (14, 14, 256),
                "conv6": (14, 14, 256), "pool4": (7, 7, 256)}
TABLE2_SIZES = {"conv1": (112, 112, 64), "norm1": (56, 56, 64), "inception2": (56, 56, 192),
                "pool2": (28, 28, 192), "inception3a": (28, 28, 256),
                "inception3b": (28, 28, 320), "inception3c": (14, 14, 640),
                "inception4a": (14, 14, 640), "inception4b": (14, 14, 640),
                "inception4c": (14, 14, 640), "inception4d": (14, 14, 640),
                "inception4e": (7, 7, 1024), "inception5a": (7, 7, 1024),
                "inception5b": (7, 7, 1024), "avgpool": (1, 1, 1024)}
UNITS = {"K": 1e3, "M": 1e6}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def assert_printed(count: int, printed: str, name: str) -> None:
    """``count`` rounds to ``printed``, give or take the biases.

    The paper rounds to the printed digits but is inconsistent about biases: 4a has 544,768
    weights + 768 biases and is printed 545K, 4b has 594,432 + 784 and is printed 595K.
    Biases are under 0.2% of every layer here, so 0.5% on top of the rounding covers them
    while any wrong kernel or channel count (>= several %) still fails.
    """
    value = float(printed[:-1]) * UNITS[printed[-1]]
    decimals = len(printed[:-1].partition(".")[2])
    half_unit = 0.5 * UNITS[printed[-1]] * 10.0 ** -decimals
    assert abs(count - value) <= half_unit + 0.005 * value, (name, count, printed)


def named_layers(net: nn.Module) -> dict[str, nn.Module]:
    return {**dict(net.trunk.named_children()), **dict(net.head.named_children())}


def output_sizes(net: nn.Module, size: tuple[int, int]) -> dict[str, tuple[int, ...]]:
    """(H, W, C) of every named trunk layer's output, as the tables write it."""
    sizes: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(
        lambda _m, _i, out, name=name: sizes.__setitem__(
            name, (out.shape[2], out.shape[3], out.shape[1])))
        for name, m in net.trunk.named_children()]
    with torch.no_grad():
        net(torch.randn(1, 3, *size))
    for hook in hooks:
        hook.remove()
    return sizes


@pytest.fixture(scope="module")
def nn1() -> NN1:
    torch.manual_seed(0)
    return NN1()


@pytest.fixture(scope="module")
def nn2() -> InceptionNN2:
    torch.manual_seed(0)
    return InceptionNN2()


def test_nn1_parameters_match_table1(nn1: NN1) -> None:
    layers = named_layers(nn1)
    for name, printed in TABLE1_PARAMS.items():
        assert_printed(n_params(layers[name]), printed, name)
    assert sum(n_params(layers[name]) for name in TABLE1_PARAMS) == n_params(nn1)
    assert n_params(nn1) == 140_025_664
    assert_printed(n_params(nn1), "140M", "total")


def test_nn2_parameters_match_table2(nn2: InceptionNN2) -> None:
    layers = named_layers(nn2)
    for name, printed in TABLE2_PARAMS.items():
        assert_printed(n_params(layers[name]), printed, name)
    assert sum(n_params(layers[name]) for name in TABLE2_PARAMS) == n_params(nn2)
    assert n_params(nn2) == 7_456_304
    assert_printed(n_params(nn2), "7.5M", "total")


def test_nn1_sizes_match_table1(nn1: NN1) -> None:
    sizes = output_sizes(nn1, (220, 220))
    for name, expected in TABLE1_SIZES.items():
        assert sizes[name] == expected, name
    assert nn1.head.fc1.units == nn1.head.fc2.units == 32 * 128
    assert nn1.head.fc7128.out_features == 128


def test_nn2_sizes_match_table2(nn2: InceptionNN2) -> None:
    sizes = output_sizes(nn2, (224, 224))
    for name, expected in TABLE2_SIZES.items():
        assert sizes[name] == expected, name
    # Stride-2 modules have no 1x1 branch: 3x3, 5x5 and the unprojected pool only.
    assert len(nn2.trunk.inception3c.branches) == len(nn2.trunk.inception4e.branches) == 3


def test_nn4_drops_late_5x5() -> None:
    net = InceptionNN2((96, 96), drop_5x5_late=True)
    sizes = output_sizes(net, (96, 96))
    assert sizes["inception4e"] == (3, 3, 1024)
    # 5a/5b lose the 128-map 5x5 branch: 384 + 384 + 128 maps, as in OpenFace's nn4.
    assert sizes["inception5a"] == sizes["inception5b"] == (3, 3, 896)
    assert len(net.trunk.inception4d.branches) == 4
    assert len(net.trunk.inception5a.branches) == len(net.trunk.inception5b.branches) == 3
    assert n_params(net) < n_params(InceptionNN2((96, 96)))


@pytest.mark.parametrize(("cls", "kwargs", "size"), [
    (NN1, {"width": 0.25}, (56, 48)),
    (InceptionNN2, {"width": 0.25}, (56, 48)),
    (NN1, {"width": 0.25}, (96, 96)),
    (InceptionNN2, {"width": 0.25, "drop_5x5_late": True}, (96, 96)),
    (InceptionNN2, {"width": 0.5}, (160, 160)),
    (NN1, {"width": 0.125, "embedding_dim": 64}, (112, 96)),
    (InceptionNN2, {"width": 0.125, "embedding_dim": 64}, (112, 96)),
])
def test_unit_embeddings_and_gradients(cls: type[nn.Module], kwargs: dict, size: tuple) -> None:
    torch.manual_seed(0)
    net = cls(input_size=size, **kwargs)
    out = net(torch.randn(3, 3, *size))
    assert out.shape == (3, net.embedding_dim)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)
    (out @ torch.randn(net.embedding_dim)).sum().backward()
    grad = net.trunk.conv1[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [NN1, InceptionNN2])
def test_parameters_scale_with_width_squared(cls: type[nn.Module]) -> None:
    # Almost every weight is in a layer whose fan-in and fan-out both scale (ratio 1/4);
    # conv1 (3 input maps), biases and the embedding layer scale linearly and lift it a bit.
    ratio = n_params(cls(width=0.5)) / n_params(cls(width=1.0))
    assert 0.24 < ratio < 0.30


@pytest.mark.parametrize("cls", [NN1, InceptionNN2])
def test_init_is_deterministic(cls: type[nn.Module]) -> None:
    def weights(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return cls(input_size=(56, 48), width=0.25).state_dict()

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["trunk.conv1.0.weight"], other["trunk.conv1.0.weight"])


def test_l2_pool_is_window_norm_with_finite_gradient() -> None:
    x = torch.zeros(1, 2, 5, 5)
    x[0, 0, 0, 0], x[0, 0, 1, 1] = 3.0, 4.0
    x.requires_grad_()
    out = _L2Pool()(x)
    assert out.shape == x.shape
    assert out[0, 0, 0, 0].item() == pytest.approx(5.0)     # sqrt(3^2 + 4^2), zero-padded
    assert out[0, 1].abs().max() == 0 and out[0, 0, 4, 4] == 0
    out.sum().backward()   # all-zero windows (channel 1) must not give NaN
    assert torch.isfinite(x.grad).all()
