"""A-Softmax / L-Softmax / bias-free softmax: psi by hand, a numpy known answer, the peer
implementation in pytorch-metric-learning, numerical gradients and the annealing schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pml_peer import assert_same_as_peer
from pytorch_metric_learning import losses as pml_losses
from torch.func import functional_call
from torch.nn import functional as F

from facerepro.losses.a_softmax import ASoftmaxLoss, cos_multiple_angle, psi
from facerepro.losses.l_softmax import LSoftmaxLoss
from facerepro.losses.softmax import SoftmaxLoss

MS = (1, 2, 3, 4)
PI = math.pi


def psi_by_definition(theta: float, m: int) -> float:
    """The paper's piecewise definition, evaluated on theta itself (no polynomial)."""
    k = min(int(math.floor(theta * m / PI)), m - 1)
    return (-1) ** k * math.cos(m * theta) - 2 * k


def inputs_at_angles(
    weight: torch.Tensor, labels: torch.Tensor, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray]:
    """Embeddings whose angle to their own class weight spans (0, pi) but stays >= 0.04 rad
    from every multiple of pi/12, hence from the k boundaries of every m in 1..4."""
    g = torch.Generator().manual_seed(seed)
    b = labels.shape[0]
    thetas = (torch.arange(b, dtype=torch.float64) + 0.5) * PI / b
    thetas = thetas + (torch.rand(b, generator=g, dtype=torch.float64) - 0.5) * 0.04
    thetas = thetas[torch.randperm(b, generator=g)]
    radii = 0.5 + 2.5 * torch.rand(b, generator=g, dtype=torch.float64)
    w_hat = F.normalize(weight.detach().to(torch.float64)[labels], dim=1)
    u = torch.randn(w_hat.shape, generator=g, dtype=torch.float64)
    u = F.normalize(u - (u * w_hat).sum(1, keepdim=True) * w_hat, dim=1)
    x = radii[:, None] * (torch.cos(thetas)[:, None] * w_hat + torch.sin(thetas)[:, None] * u)
    bounds = np.arange(13) * PI / 12
    assert np.abs(thetas.numpy()[:, None] - bounds[None, :]).min() > 0.03
    return x, thetas.numpy()


def make(cls, m: int, d: int = 3, c: int = 5, b: int = 24, seed: int = 0, **kw):
    torch.manual_seed(seed)
    loss = cls(d, c, m=m, **kw).double()
    with torch.no_grad():
        # Unequal row norms, so that ||W_j|| matters (L-Softmax) or must be removed (A-Softmax).
        loss.weight.mul_(torch.linspace(0.5, 2.0, c, dtype=torch.float64)[:, None])
    labels = torch.randint(0, c, (b,))
    x, thetas = inputs_at_angles(loss.weight, labels, seed)
    return loss, x, labels, thetas


# ---------------------------------------------------------------------------------------- psi


# (m, theta, psi) worked out by hand: psi(k pi/m) = 1 - 2k, psi((k + 1/2) pi/m) = -2k.
HAND = [
    (1, 0.0, 1.0),
    (1, PI / 2, 0.0),
    (1, PI, -1.0),
    (2, 0.0, 1.0),
    (2, PI / 4, 0.0),
    (2, PI / 2, -1.0),
    (2, 3 * PI / 4, -2.0),
    (2, PI, -3.0),
    (3, PI / 6, 0.0),
    (3, PI / 3, -1.0),
    (3, PI / 2, -2.0),
    (3, 2 * PI / 3, -3.0),
    (3, PI, -5.0),
    (4, PI / 8, 0.0),
    (4, PI / 4, -1.0),
    (4, PI / 2, -3.0),
    (4, 5 * PI / 8, -4.0),
    (4, PI, -7.0),
    (4, PI / 3, -1.5),  # k = 1: -cos(4 pi/3) - 2 = 0.5 - 2
]


@pytest.mark.parametrize("m,theta,expected", HAND)
def test_psi_hand_values(m: int, theta: float, expected: float) -> None:
    got = psi(torch.tensor([math.cos(theta)], dtype=torch.float64), m).item()
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("m", MS)
def test_psi_matches_piecewise_definition(m: int) -> None:
    thetas = [0.0, PI / (2 * m), PI / m, 0.3, 1.0, PI / 2, 2.0, 2.5, 3.0, PI]
    c = torch.tensor([math.cos(t) for t in thetas], dtype=torch.float64)
    got = psi(c, m).numpy()
    want = [psi_by_definition(t, m) for t in thetas]
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("m", MS)
def test_psi_continuous_at_boundaries(m: int) -> None:
    for k in range(1, m):
        theta = k * PI / m
        c = torch.tensor([math.cos(theta - 1e-7), math.cos(theta + 1e-7)], dtype=torch.float64)
        lo, hi = psi(c, m).tolist()
        assert lo == pytest.approx(1 - 2 * k, abs=1e-6)
        assert hi == pytest.approx(1 - 2 * k, abs=1e-6)


@pytest.mark.parametrize("m", MS)
def test_psi_decreasing_and_below_cos(m: int) -> None:
    theta = torch.linspace(0, PI, 20001, dtype=torch.float64)
    c = torch.cos(theta)
    p = psi(c, m)
    assert bool((p[1:] < p[:-1]).all())
    assert p[0].item() == pytest.approx(1.0) and p[-1].item() == pytest.approx(1 - 2 * m)
    # The margin only ever makes the target harder (psi <= cos), with equality for m = 1.
    assert bool((p <= c + 1e-12).all())
    if m == 1:
        torch.testing.assert_close(p, c)
    # d psi / d cos is T_m'(c) (-1)^k >= 0 everywhere, m^2 at both ends; the end theta = pi is
    # where an unclamped k = floor(m theta / pi) = m would flip its sign.
    c_leaf = c.clone().requires_grad_(True)
    psi(c_leaf, m).sum().backward()
    grad = c_leaf.grad
    assert bool((grad >= -1e-9).all())
    assert grad[0].item() == pytest.approx(m * m) and grad[-1].item() == pytest.approx(m * m)


@pytest.mark.parametrize("m", MS)
def test_multiple_angle_formula(m: int) -> None:
    c = torch.linspace(-1, 1, 1001, dtype=torch.float64)
    torch.testing.assert_close(cos_multiple_angle(c, m), torch.cos(m * torch.acos(c)))


@pytest.mark.parametrize("bad", [0, 5, -1, 2.0, True, "4"])
def test_invalid_m_rejected(bad) -> None:
    c = torch.zeros(2)
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 4\)"):
        psi(c, bad)
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 4\)"):
        ASoftmaxLoss(3, 4, m=bad)
    with pytest.raises(ValueError, match=r"\(1, 2, 3, 4\)"):
        LSoftmaxLoss(3, 4, m=bad)


def test_psi_safe_outside_unit_interval() -> None:
    c = torch.tensor([1.0 + 1e-6, -1.0 - 1e-6], requires_grad=True)
    out = psi(c, 4)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(c.grad).all()
    torch.testing.assert_close(out.detach(), torch.tensor([1.0, -7.0]))


# ---------------------------------------------------------------------- peer implementation


# PML 2.9 calls scipy.special.binom on tensors, which NumPy 2 flags as deprecated.
@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")
@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize(
    "ours,theirs", [(ASoftmaxLoss, "SphereFaceLoss"), (LSoftmaxLoss, "LargeMarginSoftmaxLoss")]
)
def test_matches_pytorch_metric_learning(m: int, ours, theirs: str) -> None:
    loss, x, labels, _ = make(ours, m, anneal=False)
    d, c = x.shape[1], loss.weight.shape[0]
    peer = getattr(pml_losses, theirs)(num_classes=c, embedding_size=d, margin=m, scale=1)
    # PML normalises W's columns inside its cosine similarity and multiplies ||W_j|| back in
    # only for L-Softmax.
    assert_same_as_peer(loss, peer, x, labels, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- known answer


X2 = np.array([[1.0, 0.5], [-0.3, 2.0], [0.2, -1.5], [-2.0, 0.1], [0.7, 0.7]])
Y2 = np.array([0, 1, 2, 0, 1])
W2 = np.array([[2.0, 0.0], [0.0, 0.5], [-1.0, -1.0]])


def numpy_loss(normalize_weights: bool, m: int, lam: float) -> float:
    """Expected loss from the definitions, with angles from atan2 (no dot products)."""
    ang_x = np.arctan2(X2[:, 1], X2[:, 0])
    ang_w = np.arctan2(W2[:, 1], W2[:, 0])
    theta = np.abs(ang_x[:, None] - ang_w[None, :])
    theta = np.where(theta > np.pi, 2 * np.pi - theta, theta)
    nx = np.hypot(X2[:, 0], X2[:, 1])[:, None]
    nw = np.ones(3) if normalize_weights else np.hypot(W2[:, 0], W2[:, 1])
    logits = nx * nw[None, :] * np.cos(theta)
    total = 0.0
    for i, y in enumerate(Y2):
        t = theta[i, y]
        target_psi = nx[i, 0] * nw[y] * psi_by_definition(t, m)
        row = logits[i].copy()
        row[y] = (lam * logits[i, y] + target_psi) / (1 + lam)
        total += np.log(np.exp(row).sum()) - row[y]
    return total / len(Y2)


@pytest.mark.parametrize("cls,normalize", [(ASoftmaxLoss, True), (LSoftmaxLoss, False)])
def test_known_answer_tiny_case(cls, normalize: bool) -> None:
    # The angles of the 4th sample to its class (near pi) and of the 2nd (small) put the
    # target in both k = 1 and k = 0 of m = 2.
    loss = cls(2, 3, m=2, lambda_base=10.0).double()
    loss.weight.data = torch.tensor(W2)
    loss.iteration.fill_(4)
    loss.train()
    got = loss(torch.tensor(X2), torch.tensor(Y2)).item()
    assert int(loss.iteration) == 5
    lam = max(5.0, 10.0 / (1 + 0.12 * 5))  # 6.25: the schedule's value after the increment
    assert loss.current_lambda() == pytest.approx(lam)
    assert got == pytest.approx(numpy_loss(normalize, 2, lam), rel=1e-12)
    # Sanity on the expected value itself: no margin and no annealing differ from it.
    assert abs(numpy_loss(normalize, 2, lam) - numpy_loss(normalize, 1, 0.0)) > 1e-3
    assert abs(numpy_loss(normalize, 2, lam) - numpy_loss(normalize, 2, 0.0)) > 1e-3


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("m", MS)
@pytest.mark.parametrize("cls", [ASoftmaxLoss, LSoftmaxLoss])
@pytest.mark.parametrize("iteration", [None, 10_000])  # None: anneal=False (lambda 0); else 5
def test_gradcheck(m: int, cls, iteration: int | None) -> None:
    loss, x, labels, _ = make(cls, m, d=3, c=4, b=12, anneal=iteration is not None)
    if iteration is not None:
        loss.iteration.fill_(iteration)
        assert loss.current_lambda() == 5.0
    # eval: gradcheck calls forward many times and the schedule must not move under it.
    loss.eval()
    w = loss.weight.detach().clone().requires_grad_(True)
    x = x.clone().requires_grad_(True)

    def f(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return functional_call(loss, {"weight": w}, (x, labels))

    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-6, rtol=1e-4)
    assert int(loss.iteration) == (iteration or 0)


def test_gradcheck_softmax_without_bias() -> None:
    torch.manual_seed(0)
    loss = SoftmaxLoss(3, 4, bias=False).double()
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    w = loss.classifier.weight.detach().clone().requires_grad_(True)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])

    def f(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return functional_call(loss, {"classifier.weight": w}, (x, labels))

    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------------------- annealing


def test_lambda_schedule_follows_training_forwards() -> None:
    loss, x, labels, _ = make(ASoftmaxLoss, 4)
    assert loss.iteration.dtype == torch.int64
    assert loss.current_lambda() == pytest.approx(1000.0)
    loss.train()
    for i in range(1, 6):
        loss(x, labels)
        assert int(loss.iteration) == i
        assert loss.current_lambda() == pytest.approx(max(5.0, 1000.0 * (1 + 0.12 * i) ** -1))
    # The floor: 1000 / (1 + 0.12 i) crosses 5 between i = 1658 and 1659.
    for i, want in [(1658, 1000.0 / (1 + 0.12 * 1658)), (1659, 5.0), (100_000, 5.0)]:
        loss.iteration.fill_(i)
        assert loss.current_lambda() == pytest.approx(want)
    assert 1000.0 / (1 + 0.12 * 1658) > 5.0


def test_training_forward_uses_lambda_after_increment_and_eval_does_not_advance() -> None:
    loss, x, labels, _ = make(ASoftmaxLoss, 4, lambda_base=20.0, lambda_min=0.0)
    loss.eval()
    loss.iteration.fill_(3)
    at_3 = loss(x, labels).item()
    loss.iteration.fill_(4)
    at_4 = loss(x, labels).item()
    loss(x, labels)
    assert int(loss.iteration) == 4  # eval forwards leave the schedule alone
    assert abs(at_3 - at_4) > 1e-4
    loss.iteration.fill_(3)
    loss.train()
    assert loss(x, labels).item() == pytest.approx(at_4, rel=1e-12)
    assert int(loss.iteration) == 4


def test_state_dict_round_trip_continues_schedule() -> None:
    a, x, labels, _ = make(ASoftmaxLoss, 4)
    a.train()
    for _ in range(7):
        a(x, labels)
    state = a.state_dict()
    assert "iteration" in state and int(state["iteration"]) == 7
    torch.manual_seed(123)
    b = ASoftmaxLoss(3, 5, m=4).double()
    b.load_state_dict(state)
    assert int(b.iteration) == 7
    assert b.current_lambda() == a.current_lambda()
    b.train()
    assert b(x, labels).item() == a(x, labels).item()
    assert b.current_lambda() == a.current_lambda() == pytest.approx(1000.0 / (1 + 0.12 * 8))


@pytest.mark.parametrize("cls", [ASoftmaxLoss, LSoftmaxLoss])
def test_infinite_lambda_tends_to_modified_softmax(cls) -> None:
    margin, x, labels, _ = make(cls, 4, lambda_base=1e15, lambda_min=0.0)
    plain, _, _, _ = make(cls, 1, anneal=False)
    torch.testing.assert_close(margin.weight, plain.weight)
    a, b = margin(x, labels).item(), plain(x, labels).item()
    assert a == pytest.approx(b, rel=1e-9)
    # and without annealing the margin makes a real difference on these inputs
    no_anneal, _, _, _ = make(cls, 4, anneal=False)
    assert no_anneal(x, labels).item() > b + 0.1


def test_m1_annealing_changes_nothing_and_anneal_false_is_lambda_zero() -> None:
    on, x, labels, _ = make(ASoftmaxLoss, 1)
    off, _, _, _ = make(ASoftmaxLoss, 1, anneal=False)
    on.iteration.fill_(10_000)
    assert off.current_lambda() == 0.0
    assert on(x, labels).item() == pytest.approx(off(x, labels).item(), rel=1e-12)
    # m = 1 without annealing is the modified softmax: cross-entropy over ||x|| cos(theta_j)
    expected = F.cross_entropy(x @ F.normalize(off.weight, dim=1).t(), labels)
    assert off(x, labels).item() == pytest.approx(expected.item(), rel=1e-12)


# ------------------------------------------------------------------------- logits / misc


def test_logits_are_plain() -> None:
    a, x, _, _ = make(ASoftmaxLoss, 4)
    l_, _, _, _ = make(LSoftmaxLoss, 4)
    la = a.logits(x)
    assert la.shape == (x.shape[0], 5)
    cos = F.cosine_similarity(x[:, None, :], a.weight[None, :, :], dim=2)
    torch.testing.assert_close(la, x.norm(dim=1, keepdim=True) * cos)
    torch.testing.assert_close(l_.logits(x), x @ l_.weight.t())
    assert int(a.iteration) == 0  # logits() is inspection only


def test_no_bias_and_deterministic_init() -> None:
    for cls in (ASoftmaxLoss, LSoftmaxLoss):
        torch.manual_seed(5)
        one = cls(8, 6)
        torch.manual_seed(5)
        two = cls(8, 6)
        assert [n for n, _ in one.named_parameters()] == ["weight"]
        assert one.weight.shape == (6, 8)
        torch.testing.assert_close(one.weight, two.weight)


def test_float32_forward_backward() -> None:
    torch.manual_seed(0)
    loss = ASoftmaxLoss(16, 10)
    x = torch.randn(32, 16, requires_grad=True)
    labels = torch.randint(0, 10, (32,))
    value = loss(x, labels)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert torch.isfinite(x.grad).all() and torch.isfinite(loss.weight.grad).all()
    zero = torch.zeros(2, 16, requires_grad=True)
    loss(zero, labels[:2]).backward()
    assert torch.isfinite(zero.grad).all()


def test_softmax_without_bias() -> None:
    torch.manual_seed(0)
    with_bias = SoftmaxLoss(4, 3)
    assert with_bias.classifier.bias is not None
    loss = SoftmaxLoss(4, 3, bias=False)
    assert loss.classifier.bias is None
    assert [n for n, _ in loss.named_parameters()] == ["classifier.weight"]
    x = torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 1, 0])
    w = loss.classifier.weight
    torch.testing.assert_close(loss(x, y), F.cross_entropy(x @ w.t(), y))
    torch.testing.assert_close(loss.logits(x), x @ w.t())
