"""Compact int32 (Fan et al. 2014): the |tanh| net and its codes, the pair logistic loss through
the three rounding techniques (known answers, the Hamming-distance recurrence against brute
force, numerical gradients, saturation under the std term)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from facerepro.losses.pair_logistic import PairLogisticLoss, hamming_distribution
from facerepro.models.compact import CompactNet, quantize

# ------------------------------------------------------------------------------------ the net


def params_by_hand(channels: tuple[int, ...], hidden: int, n: int, h: int, w: int) -> int:
    """3x3 convs with bias, 2x2 pools (floor), FC hidden, FC head n."""
    total, c_in = 0, 3
    for c in channels:
        total += c_in * c * 9 + c
        c_in = c
        h, w = h // 2, w // 2
    return total + (c_in * h * w * hidden + hidden) + (hidden * n + n)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_paper_scale():
    model = CompactNet((112, 96), 32)
    assert n_params(model) == params_by_hand((32, 64, 128, 256), 800, 32, 112, 96) == 9_016_448
    # width scales channels and hidden units; 8 x 4 bits has n = 8
    half = CompactNet((112, 96), 8, bits=4, width=0.5)
    assert n_params(half) == params_by_hand((16, 32, 64, 128), 400, 8, 112, 96)
    tiny = CompactNet((56, 48), 8, width=0.01)       # every layer keeps at least one unit
    assert n_params(tiny) == params_by_hand((1, 1, 1, 3), 8, 8, 56, 48)


@pytest.mark.parametrize("bits", [1, 4])
def test_train_output_and_eval_codes(bits):
    torch.manual_seed(0)
    model = CompactNet((56, 48), 8, bits=bits, width=0.25)
    assert (model.embedding_dim, model.bits) == (8, bits)
    x = torch.randn(5, 3, 56, 48)
    g = model.train()(x)
    assert g.shape == (5, 8) and g.dtype == torch.float32
    assert g.min() >= 0 and g.max() < 2**bits
    assert g.unique().numel() > 8           # real values, not codes
    with torch.no_grad():
        codes = model.eval()(x)
    assert codes.shape == (5, 8) and codes.dtype == torch.float32
    assert torch.equal(codes, codes.round())
    assert codes.min() >= 0 and codes.max() <= 2**bits - 1
    assert torch.equal(codes, torch.floor(g.detach()))


@pytest.mark.parametrize("bits", [1, 4])
def test_saturated_sigmoid_stays_in_code_range(bits):
    model = CompactNet((32, 32), 4, bits=bits, width=0.25)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([50.0, -50.0, 50.0, 0.0]))
    x = torch.randn(2, 3, 32, 32)
    assert torch.sigmoid(torch.tensor(50.0)) == 1.0          # the case being guarded
    g = model.train()(x)
    assert g.max() < 2**bits
    top = 2**bits - 1
    assert torch.floor(g).tolist() == [[top, 0, top, 2 ** (bits - 1)]] * 2
    assert model.eval()(x).tolist() == [[top, 0, top, 2 ** (bits - 1)]] * 2


def test_quantize_known_answers():
    g = torch.tensor([0.0, 0.99, 1.0, 3.999, 4.0])
    assert quantize(g, 2).tolist() == [0, 0, 1, 3, 3]
    assert quantize(torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0]), 1).tolist() == [0, 0, 1, 1, 1]
    assert quantize(torch.tensor([15.2, 16.0, 7.9]), 4).tolist() == [15, 15, 7]


def test_other_input_sizes_and_too_small():
    model = CompactNet((56, 48), 16, width=0.25)
    assert model(torch.zeros(2, 3, 56, 48)).shape == (2, 16)
    assert model.fc[0].in_features == 64 * 3 * 3
    assert CompactNet((37, 50), 4, width=0.25)(torch.zeros(1, 3, 37, 50)).shape == (1, 4)
    with pytest.raises(ValueError, match="too small"):
        CompactNet((15, 96), 4)


# ----------------------------------------------------------------------------------- the loss


def test_rounding_known_answer():
    # pair 1 (same): codes [0, 1, 3] vs [1, 1, 0] -> d = 4, y = 0.5 * 4 - 2 = 0 -> log 2
    # pair 2 (diff): codes [2, 0, 1] vs [2, 2, 1] -> d = 2, y = -1, l = +1 -> log(1 + e)
    g = torch.tensor([[0.2, 1.7, 3.4], [1.1, 1.2, 0.9], [2.5, 0.3, 1.9], [2.2, 2.8, 1.4]])
    labels = torch.tensor([7, 7, 1, 2])
    loss = PairLogisticLoss(alpha=0.5, beta=2.0, technique="rounding")(g, labels)
    assert loss.item() == pytest.approx((math.log(2) + math.log(1 + math.e)) / 2, rel=1e-6)
    # unrounded, d = 3.9 and 3.3: a different number, so the codes above were really used
    unrounded = PairLogisticLoss(alpha=0.5, beta=2.0, technique="std", omega=0.0)(g, labels)
    by_hand = (math.log(1 + math.exp(0.5 * 3.9 - 2)) + math.log(1 + math.exp(2 - 0.5 * 3.3))) / 2
    assert unrounded.item() == pytest.approx(by_hand, rel=1e-6)
    assert abs(unrounded.item() - loss.item()) > 0.05


def test_std_known_answer():
    rng = np.random.default_rng(3)
    g = rng.uniform(0, 2, (6, 4))
    labels = np.array([0, 0, 1, 2, 3, 3])
    d = np.abs(g[0::2] - g[1::2]).sum(1)
    sign = np.where(labels[0::2] == labels[1::2], -1.0, 1.0)
    pair = np.log1p(np.exp(-sign * (1.5 * d - 3.0))).mean()
    want = pair - 0.3 * g.std(0).sum()
    got = PairLogisticLoss(1.5, 3.0, "std", omega=-0.3)(torch.from_numpy(g),
                                                         torch.from_numpy(labels))
    assert got.item() == pytest.approx(want, rel=1e-12)


def brute_force(p1: torch.Tensor, p2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (2^n x 2^n) pair of bit patterns: (P, 2^n, 2^n) probabilities, Hamming distances."""
    n = p1.shape[1]
    bits = torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=p1.dtype)

    def prob(p):
        return torch.where(bits.bool()[None], p[:, None], 1 - p[:, None]).prod(-1)

    joint = prob(p1)[:, :, None] * prob(p2)[:, None, :]
    hamming = (bits[:, None, :] != bits[None, :, :]).sum(-1).to(p1.dtype)
    return joint, hamming


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_hamming_distribution_matches_enumeration(n):
    gen = torch.Generator().manual_seed(n)
    p1 = torch.rand(4, n, generator=gen, dtype=torch.float64)
    p2 = torch.rand(4, n, generator=gen, dtype=torch.float64)
    joint, hamming = brute_force(p1, p2)
    want = torch.stack([joint[:, hamming == j].sum(1) for j in range(n + 1)], 1)
    dist = hamming_distribution(p1, p2)
    assert dist.shape == (4, n + 1)
    torch.testing.assert_close(dist, want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(dist.sum(1), torch.ones(4, dtype=torch.float64))

    labels = torch.tensor([0, 0, 1, 2, 3, 3, 4, 5])      # same, diff, same, diff
    g = torch.stack([p1, p2], 1).reshape(8, n) * 2       # rows 2i, 2i+1 <- p1[i], p2[i]
    sign = torch.tensor([-1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    term = F.softplus(-sign[:, None, None] * (0.7 * hamming - 1.3))
    expected = (joint * term).sum((1, 2)).mean()
    got = PairLogisticLoss(alpha=0.7, beta=1.3, technique="expected")(g, labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)


def test_expected_with_certain_bits_is_the_plain_loss():
    bits = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1], [1, 1, 1, 1, 1], [1, 1, 0, 1, 1]],
                        dtype=torch.float64)
    labels = torch.tensor([4, 4, 2, 9])
    got = PairLogisticLoss(alpha=1.0, beta=2.5, technique="expected")(2 * bits, labels)
    # Hamming 3 for the same pair (l = -1), 1 for the different one (l = +1)
    want = (math.log(1 + math.exp(3 - 2.5)) + math.log(1 + math.exp(-(1 - 2.5)))) / 2
    assert got.item() == pytest.approx(want, rel=1e-12)


def test_gradcheck_expected_and_std():
    gen = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 0, 1, 2, 3, 3])
    g = (0.1 + 1.8 * torch.rand(6, 4, generator=gen, dtype=torch.float64)).requires_grad_()
    expected = PairLogisticLoss(alpha=1.0, beta=1.5, technique="expected")
    assert torch.autograd.gradcheck(lambda x: expected(x, labels), (g,))
    std = PairLogisticLoss(alpha=0.8, beta=2.0, technique="std", omega=-0.1)
    assert torch.autograd.gradcheck(lambda x: std(x, labels), (g,))


def test_rounding_gradient_is_straight_through():
    alpha, beta = 0.6, 1.0
    g = torch.tensor([[0.2, 1.7, 3.4], [1.1, 2.2, 0.9], [2.5, 0.3, 1.9], [0.2, 2.8, 3.4]],
                     dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([7, 7, 1, 2])
    PairLogisticLoss(alpha, beta, "rounding")(g, labels).backward()

    def analytic(f: torch.Tensor) -> torch.Tensor:
        """d/df of mean softplus(-l (alpha |f1 - f2|_1 - beta)), written out."""
        sign = torch.tensor([-1.0, 1.0], dtype=torch.float64)
        diff = f[0::2] - f[1::2]
        y = alpha * diff.abs().sum(1) - beta
        dy = -sign * torch.sigmoid(-sign * y) / 2       # 2 pairs in the mean
        d1 = dy[:, None] * alpha * torch.sign(diff)
        return torch.stack([d1, -d1], 1).reshape(f.shape)

    codes = torch.floor(g.detach())
    assert (codes[0::2] != codes[1::2]).all()           # no ties, where |.| has no slope
    torch.testing.assert_close(g.grad, analytic(codes), rtol=1e-12, atol=1e-14)
    assert not torch.allclose(g.grad, analytic(g.detach()), rtol=1e-3)


def distance_from_binary(omega: float) -> float:
    torch.manual_seed(0)
    logits = (0.5 * torch.randn(8, 4, dtype=torch.float64)).requires_grad_()
    labels = torch.tensor([0, 0, 1, 1, 2, 3, 4, 5])
    loss = PairLogisticLoss(alpha=1.0, beta=2.0, technique="std", omega=omega)
    opt = torch.optim.Adam([logits], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        loss(2 * torch.sigmoid(logits), labels).backward()      # Q = 1
        opt.step()
    f_model = torch.sigmoid(logits.detach())
    return torch.minimum(f_model, 1 - f_model).mean().item()


def test_std_term_default_sign_saturates():
    default = PairLogisticLoss(technique="std").omega
    assert default < 0
    saturated = distance_from_binary(default)
    assert saturated < 0.1
    assert saturated < 0.4 * distance_from_binary(0.0)
    assert saturated < 0.4 * distance_from_binary(-default)


@pytest.mark.parametrize("technique", ["rounding", "expected", "std"])
def test_monotone_in_distance(technique):
    loss = PairLogisticLoss(alpha=1.0, beta=2.0, technique=technique, omega=0.0)
    # rounding: the codes step 0, 1, 2, 3 per dimension; expected: p = t / 2 grows
    steps = [0.5, 1.5, 2.5, 3.5] if technique == "rounding" else [0.1, 0.5, 1.0, 1.5, 1.9]

    def losses(labels):
        return [loss(torch.stack([torch.zeros(3), torch.full((3,), t)]), labels).item()
                for t in steps]

    same, diff = losses(torch.tensor([1, 1])), losses(torch.tensor([1, 2]))
    assert all(a < b for a, b in itertools.pairwise(same))
    assert all(a > b for a, b in itertools.pairwise(diff))


def test_errors():
    with pytest.raises(ValueError, match="unknown rounding technique 'dp'"):
        PairLogisticLoss(technique="dp")
    with pytest.raises(ValueError, match="pair sampler"):
        PairLogisticLoss()(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))
