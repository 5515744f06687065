"""CosFace (large margin cosine) and ArcFace (additive angular margin) losses: a known answer
worked by hand, numerical gradients in float64, the peer implementations of
pytorch-metric-learning, and ArcFace's target logit past theta = pi - m."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pml_peer import assert_same_as_peer
from pytorch_metric_learning import losses as pml_losses
from torch.func import functional_call
from torch.nn import functional as F

from facerepro import losses
from facerepro.losses.arcface import ArcFaceLoss
from facerepro.losses.cosface import CosFaceLoss

FALLBACKS = ("linear", "clamp", "none")

# --------------------------------------------------------------------------- known answer
#
# Two classes in the plane: class 0 along x, class 1 along y, with unequal norms (2 and 0.5)
# that the losses must normalise away. Two samples, of norms 2 and 3 (also normalised away):
#
#   A = (1, sqrt 3), label 0, at 60 degrees:  cos(theta_0) = 1/2,  cos(theta_1) = sqrt(3)/2
#                                            = 0.8660254
#   B = 3 (cos 250, sin 250), label 1:         theta_1 = 250 - 90 = 160 degrees,
#                                              cos(theta_1) = cos 160 = -0.9396926,
#                                              cos(theta_0) = cos 250 = -0.3420201
#
# With two classes, -log(e^t / (e^t + e^o)) = log(1 + e^(o - t)) for target logit t and other
# logit o. Scale s = 4.
#
# CosFace, m = 0.25:
#   A: t = 4 (0.5 - 0.25) = 1,  o = 4 x 0.8660254 = 3.4641016,  o - t = 2.4641016,
#      L_A = log(1 + e^2.4641016) = log(1 + 11.75292) = 2.5457602
#   B: t = 4 (-0.9396926 - 0.25) = -4.7587705,  o = 4 x -0.3420201 = -1.3680806,
#      o - t = 3.3906899,  L_B = log(1 + e^3.3906899) = log(1 + 29.68643) = 3.4238204
#   mean = (2.5457602 + 3.4238204) / 2 = 2.9847903
#
# ArcFace, m = pi / 6 (30 degrees), so pi - m = 150 degrees:
#   A: theta_0 + m = 90 degrees, t = 4 cos 90 = 0,  o = 3.4641016,
#      L_A = log(1 + e^3.4641016) = log(1 + 31.94775) = 3.4949228
#   B: theta_1 = 160 > 150 degrees, past pi - m: the target depends on the fallback,
#      linear: cos 160 - m sin m = -0.9396926 - 0.5235988 x 0.5 = -1.2014920,
#              o - t = 4 (-0.3420201 + 1.2014920) = 3.4378875,
#              L_B = log(1 + 31.12115) = 3.4695145,  mean 3.4822187
#      clamp:  cos 180 = -1,  o - t = 4 (-0.3420201 + 1) = 2.6319194,
#              L_B = log(1 + 13.90042) = 2.7013897,  mean 3.0981563
#      none:   cos 190 = -0.9848078,  o - t = 4 (-0.3420201 + 0.9848078) = 2.5711504,
#              L_B = log(1 + 13.08086) = 2.6448167,  mean 3.0698698

X_HAND = torch.tensor([[1.0, math.sqrt(3.0)],
                       [3 * math.cos(math.radians(250)), 3 * math.sin(math.radians(250))]],
                      dtype=torch.float64)
Y_HAND = torch.tensor([0, 1])
W_HAND = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)


def _with_weight(loss: torch.nn.Module, weight: torch.Tensor) -> torch.nn.Module:
    loss = loss.double()
    loss.weight.data = weight.clone()
    return loss


def test_cosface_known_answer() -> None:
    loss = _with_weight(CosFaceLoss(2, 2, s=4.0, m=0.25), W_HAND)
    assert loss(X_HAND, Y_HAND).item() == pytest.approx(2.9847903, abs=1e-7)
    # the margin is in it: m = 0 is the normalised softmax,
    # (log(1 + e^(4 (0.8660254 - 0.5))) + log(1 + e^(4 (-0.3420201 + 0.9396926)))) / 2
    # = (log(1 + e^1.4641016) + log(1 + e^2.3906899)) / 2 = (1.6721605 + 2.4783038) / 2
    # = 2.0752322
    plain = _with_weight(CosFaceLoss(2, 2, s=4.0, m=0.0), W_HAND)
    assert plain(X_HAND, Y_HAND).item() == pytest.approx(2.0752322, abs=1e-7)


@pytest.mark.parametrize(("fallback", "expected"), [
    ("linear", 3.4822187), ("clamp", 3.0981563), ("none", 3.0698698)])
def test_arcface_known_answer(fallback: str, expected: float) -> None:
    loss = _with_weight(ArcFaceLoss(2, 2, s=4.0, m=math.pi / 6, fallback=fallback), W_HAND)
    assert loss(X_HAND, Y_HAND).item() == pytest.approx(expected, abs=1e-7)
    # sample B is past pi - m, sample A is not
    assert loss.diagnostics()["beyond_pi_minus_m"] == 0.5
    assert loss.diagnostics()["target_angle"] == pytest.approx((60 + 160) / 2)


# ---------------------------------------------------------------------------- gradients


def inputs_at_angles(weight: torch.Tensor, labels: torch.Tensor, seed: int = 0,
                     avoid: tuple[float, ...] = ()) -> torch.Tensor:
    """Embeddings of random norms whose angles to their own class weight spread over (0, pi),
    each at least 0.02 rad from every angle in ``avoid`` (ArcFace's pi - m, where the linear
    fallback steps)."""
    g = torch.Generator().manual_seed(seed)
    b = labels.shape[0]
    thetas = (torch.arange(b, dtype=torch.float64) + 0.5) * math.pi / b
    thetas = thetas[torch.randperm(b, generator=g)]
    for a in avoid:
        near = (thetas - a).abs() < 0.02
        thetas = torch.where(near, thetas + 0.05, thetas)
    radii = 0.5 + 2.5 * torch.rand(b, generator=g, dtype=torch.float64)
    w_hat = F.normalize(weight.detach().to(torch.float64)[labels], dim=1)
    u = torch.randn(w_hat.shape, generator=g, dtype=torch.float64)
    u = F.normalize(u - (u * w_hat).sum(1, keepdim=True) * w_hat, dim=1)
    return radii[:, None] * (torch.cos(thetas)[:, None] * w_hat + torch.sin(thetas)[:, None] * u)


def make(loss: torch.nn.Module, c: int, b: int = 16, seed: int = 0, avoid=()):
    torch.manual_seed(seed)
    loss = loss.double()
    with torch.no_grad():
        loss.weight.mul_(torch.linspace(0.5, 2.0, c, dtype=torch.float64)[:, None])
    labels = torch.randint(0, c, (b,))
    return loss, inputs_at_angles(loss.weight, labels, seed, avoid), labels


LOSSES = {
    "cosface": lambda: CosFaceLoss(3, 4, s=8.0, m=0.35),
    **{f"arcface_{f}": (lambda f=f: ArcFaceLoss(3, 4, s=8.0, m=0.5, fallback=f))
       for f in FALLBACKS},
}


@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck(name: str) -> None:
    loss, x, labels = make(LOSSES[name](), c=4, avoid=(math.pi - 0.5,))
    if name.startswith("arcface"):
        loss(x, labels)
        assert 0 < loss.diagnostics()["beyond_pi_minus_m"] < 1   # both branches are checked
    w = loss.weight.detach().clone().requires_grad_(True)
    x = x.clone().requires_grad_(True)

    def f(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return functional_call(loss, {"weight": w}, (x, labels))

    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradient_is_finite_at_theta_zero_and_pi() -> None:
    # sin(theta) = sqrt(1 - cos^2) has an infinite slope where a feature lies on its class
    # weight or opposite it; the loss must not turn that into NaN.
    loss = _with_weight(ArcFaceLoss(2, 2), W_HAND)
    x = torch.tensor([[3.0, 0.0], [0.0, -1.0]], dtype=torch.float64, requires_grad=True)
    value = loss(x, Y_HAND)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    assert torch.isfinite(loss.weight.grad).all()


# ---------------------------------------------------------------------- peer implementation


@pytest.mark.parametrize("name", ["cosface", "arcface"])
@pytest.mark.parametrize(("s", "m"), [(64.0, None), (16.0, 0.2)])   # None: the paper's m
def test_matches_pytorch_metric_learning(name: str, s: float, m: float | None) -> None:
    d, c = 5, 7
    if name == "cosface":
        m = 0.35 if m is None else m
        ours = CosFaceLoss(d, c, s=s, m=m)
        peer = pml_losses.CosFaceLoss(num_classes=c, embedding_size=d, margin=m, scale=s)
    else:
        m = 0.5 if m is None else m
        ours = ArcFaceLoss(d, c, s=s, m=m)     # the linear fallback, as PML's
        # PML's ArcFace margin is in degrees
        peer = pml_losses.ArcFaceLoss(num_classes=c, embedding_size=d, margin=math.degrees(m),
                                      scale=s)
    loss, x, labels = make(ours, c=c, b=24, avoid=(math.pi - m,))
    if name == "arcface":
        loss(x, labels)
        assert loss.diagnostics()["beyond_pi_minus_m"] > 0   # the fallback is compared too
    theirs_value = assert_same_as_peer(loss, peer, x, labels, rtol=1e-10, atol=1e-10,
                                       grad_rtol=1e-7)
    # the comparison can tell a margin off by 0.05 apart
    with torch.no_grad():
        loss.m += 0.05
        if name == "arcface":
            loss.cos_m, loss.sin_m = math.cos(loss.m), math.sin(loss.m)
            loss.threshold = -loss.cos_m
        assert abs(loss(x, labels).item() - theirs_value.item()) > 1e-2


# ------------------------------------------------------------------- ArcFace past pi - m


def target_curve(fallback: str, m: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The target logit before scaling, for theta over [0, pi]."""
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    loss = ArcFaceLoss(2, 2, s=1.0, m=m, fallback=fallback)
    return theta.numpy(), loss.target(torch.cos(theta)).numpy()


@pytest.mark.parametrize("fallback", ["linear", "clamp"])
def test_fallbacks_keep_the_target_logit_non_increasing(fallback: str) -> None:
    theta, t = target_curve(fallback)
    assert np.all(np.diff(t) <= 1e-12)
    inside = theta <= math.pi - 0.5 - 1e-9
    np.testing.assert_allclose(t[inside], np.cos(theta[inside] + 0.5), atol=1e-9)
    beyond = theta > math.pi - 0.5 + 1e-9
    expected = (np.cos(theta[beyond]) - 0.5 * math.sin(0.5) if fallback == "linear"
                else -np.ones(beyond.sum()))
    np.testing.assert_allclose(t[beyond], expected, atol=1e-9)


def test_without_fallback_the_target_logit_rises_past_pi_minus_m() -> None:
    theta, t = target_curve("none")
    np.testing.assert_allclose(t, np.cos(theta + 0.5), atol=1e-9)
    assert t[-1] > t[theta <= math.pi - 0.5].min() + 0.1      # cos(pi + m) = -cos(m) > -1


# ------------------------------------------------------------------------- registry, config


def test_methods_build_with_the_papers_values() -> None:
    labels = np.array([0, 1, 2, 1])
    cos = losses.build("cosface", 8, labels)
    arc = losses.build("arcface", 8, labels, {"fallback": "clamp"})
    assert isinstance(cos, CosFaceLoss) and (cos.s, cos.m) == (64.0, 0.35)
    assert isinstance(arc, ArcFaceLoss) and (arc.s, arc.m, arc.fallback) == (64.0, 0.5, "clamp")
    assert cos.weight.shape == arc.weight.shape == (3, 8)


@pytest.mark.parametrize("bad", [{"fallback": "easy"}, {"s": 0.0}, {"m": -0.1},
                                 {"m": math.pi}])
def test_bad_options_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        ArcFaceLoss(4, 3, **bad)
