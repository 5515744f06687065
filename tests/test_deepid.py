"""DeepID2 / DeepID2+ nets and the layer-wise identification-verification loss: shapes, the
parameter counts by hand, the post-ReLU features, the "no layer-wise supervision" gradients
and the loss against per-layer ``IdentVerifLoss`` plus numerical gradients."""

from __future__ import annotations

import pytest
import torch

from facerepro.losses.ident_verif import IdentVerifLoss, LayerwiseIdentVerifLoss
from facerepro.models.deepid import DeepID2Net, DeepID2PlusNet

DEEPID2_MAPS = (20, 40, 60, 80)
SMALL = {"maps": (4, 5, 6, 7), "embedding_dim": 8}     # CPU-sized widths for the gradient tests


def conv_params(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def linear_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


# Map sizes at 55x47 worked out by hand (valid convs, 2x2 pools):
# conv1 4x4 52x44 -> pool 26x22; conv2 3x3 24x20 -> 12x10; conv3 3x3 10x8 -> 5x4; conv4 2x2 4x3
# (DeepID2 NIPS 2014 Fig. 1), and DeepID2+'s pool4 4x3 -> 2x2 (ceil mode keeps the last column).
POOLED_55X47 = ((26, 22), (12, 10), (5, 4), (2, 2))
CONV4_55X47 = (4, 3)


def convs_by_hand(maps: tuple[int, ...]) -> int:
    return (conv_params(3, maps[0], 4) + conv_params(maps[0], maps[1], 3)
            + conv_params(maps[1], maps[2], 3) + conv_params(maps[2], maps[3], 2))


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts_by_hand():
    (h3, w3), (h4, w4) = POOLED_55X47[2], CONV4_55X47
    deepid2 = convs_by_hand(DEEPID2_MAPS) + linear_params(60 * h3 * w3 + 80 * h4 * w4, 160)
    assert deepid2 == 394_920
    assert n_params(DeepID2Net((55, 47))) == deepid2

    for maps, dim, total in (((128,) * 4, 512, 47_292_928), (DEEPID2_MAPS, 160, 2_891_400)):
        fcs = sum(linear_params(c * h * w, dim) for c, (h, w) in zip(maps, POOLED_55X47,
                                                                       strict=True))
        assert convs_by_hand(maps) + fcs == total
        assert n_params(DeepID2PlusNet((55, 47), dim, maps)) == total


@pytest.mark.parametrize("size", [(55, 47), (56, 48)])
def test_output_shapes(size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)

    net2 = DeepID2Net(size).eval()
    (fc,) = net2.supervised(x)
    assert net2.embedding_dim == 160 and fc.shape == (2, 160)
    assert torch.equal(net2(x), fc)

    plus = DeepID2PlusNet(size, maps=(8, 8, 8, 8)).eval()
    layers = plus.supervised(x)
    assert plus.embedding_dim == 512
    assert [tuple(f.shape) for f in layers] == [(2, 512)] * 4
    assert torch.equal(plus(x), layers[-1])
    assert torch.equal(plus.supervised(x, layerwise=False)[0], layers[0])


def test_paper_width_deepid2plus_runs_at_crop_size():
    out = DeepID2PlusNet((56, 48)).eval()(torch.randn(1, 3, 56, 48))
    assert out.shape == (1, 512)


def test_smallest_input():
    assert DeepID2PlusNet((24, 24), **SMALL)(torch.randn(1, 3, 24, 24)).shape == (1, 8)
    assert DeepID2Net((24, 24), **SMALL)(torch.randn(1, 3, 24, 24)).shape == (1, 8)
    with pytest.raises(ValueError, match="too small"):
        DeepID2PlusNet((23, 40))


def test_fc_outputs_are_post_relu():
    torch.manual_seed(0)
    net = DeepID2PlusNet((55, 47), maps=(8, 8, 8, 8))
    seen = []
    net.fc2.register_forward_hook(lambda module, args, out: seen.append(out))
    net.supervised(torch.randn(4, 3, 55, 47))
    (fc2,) = seen
    assert fc2.shape == (4, 512)
    assert (fc2 >= 0).all()
    assert (fc2 == 0).any() and (fc2 > 0).any()


def conv1_grad(net: DeepID2PlusNet, loss_fn: LayerwiseIdentVerifLoss, x, labels, layerwise: bool,
               only_fc4: bool = False) -> torch.Tensor:
    net.zero_grad()
    loss_fn.zero_grad()
    layers = net.supervised(x, layerwise=layerwise)
    if only_fc4:
        loss_fn.layers[3](layers[3], labels).backward()
    else:
        loss_fn(layers, labels).backward()
    return net.conv1.weight.grad.clone()


def test_no_layerwise_supervision_only_fc4_reaches_the_convs():
    torch.manual_seed(0)
    net = DeepID2PlusNet((32, 28), **SMALL).double()
    loss_fn = LayerwiseIdentVerifLoss([8] * 4, 3, layerwise=False).double()
    x = torch.randn(6, 3, 32, 28, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 2, 2, 2])

    fc4_only = conv1_grad(net, loss_fn, x, labels, layerwise=False, only_fc4=True)
    assert fc4_only.abs().sum() > 0
    assert net.fc1[0].weight.grad is None       # FC-4's loss alone does not touch FC-1

    no_layerwise = conv1_grad(net, loss_fn, x, labels, layerwise=False)
    assert torch.equal(no_layerwise, fc4_only)
    assert net.fc1[0].weight.grad.abs().sum() > 0   # FC-1 still learns from its own loss

    layerwise = conv1_grad(net, loss_fn, x, labels, layerwise=True)
    assert not torch.allclose(layerwise, fc4_only)


def test_layerwise_loss_is_the_sum_of_per_layer_losses():
    torch.manual_seed(0)
    dims = [3, 4, 5]
    loss_fn = LayerwiseIdentVerifLoss(dims, 4, verification_weight=0.3, margin=2.0)
    assert loss_fn.layerwise and len(loss_fn.layers) == 3
    layers = [torch.randn(6, d) for d in dims]
    labels = torch.tensor([0, 0, 1, 2, 3, 3])

    expected = 0.0
    for d, part, f in zip(dims, loss_fn.layers, layers, strict=True):
        single = IdentVerifLoss(d, 4, verification_weight=0.3, margin=2.0)
        single.load_state_dict(part.state_dict())
        expected += single(f, labels).item()
    assert loss_fn(layers, labels).item() == pytest.approx(expected, rel=1e-6)

    with pytest.raises(ValueError, match="2 feature layers given"):
        loss_fn(layers[:2], labels)


def test_layerwise_loss_options_reach_every_layer():
    loss_fn = LayerwiseIdentVerifLoss([3, 4], 5, verification_weight=0.2, margin=1.5, bias=False,
                                      layerwise=False)
    assert not loss_fn.layerwise
    for part, d in zip(loss_fn.layers, (3, 4), strict=True):
        assert part.identification.classifier.weight.shape == (5, d)
        assert part.identification.classifier.bias is None
        assert part.verification_weight == 0.2 and part.verification.margin == 1.5


def test_layerwise_loss_gradcheck():
    torch.manual_seed(0)
    loss_fn = LayerwiseIdentVerifLoss([3, 4], 3, verification_weight=0.5, margin=2.0).double()
    f3 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    f4 = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 2])
    assert torch.autograd.gradcheck(lambda a, b: loss_fn([a, b], labels), (f3, f4))
