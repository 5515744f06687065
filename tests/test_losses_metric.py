"""Metric-learning losses: triplet mining and loss, contrastive, ident-verif, center loss."""

import math

import pytest
import torch
from pytorch_metric_learning import distances, losses, miners, reducers
from torch.nn import functional as F

from facerepro.losses.center import CenterLoss
from facerepro.losses.contrastive import ContrastiveLoss
from facerepro.losses.ident_verif import IdentVerifLoss
from facerepro.losses.triplet import TripletLoss, mine_triplets, triplet_loss

MARGIN = 0.2

# 3 identities x 2 images as unit vectors in the plane. Between unit vectors at angle t the
# squared distance is d(t) = 2 - 2 cos t. Angles are chosen so that no two distances an
# anchor compares are within 0.04 of each other or of d(a, p) + margin.
ANGLES = [0.0, 40.0, 50.0, 110.0, 150.0, 175.0]
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


def d(degrees: float) -> float:
    return 2 - 2 * math.cos(math.radians(degrees))


def unit_vectors(angles: list[float], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    t = torch.tensor(angles, dtype=torch.float64).deg2rad()
    return torch.stack([t.cos(), t.sin()], 1).to(dtype)


def as_set(triplets: tuple[torch.Tensor, ...]) -> set[tuple[int, ...]]:
    return set(zip(*(t.tolist() for t in triplets), strict=True))


# By hand, margin 0.2, per ordered anchor-positive pair (distances as d(angle)):
# (0,1): d_ap = d(40) = .468; negatives 2: d(50) = .714, 3: d(110), 4: d(150), 5: d(175).
#        Closest farther than the positive is 2, but .714 > .668: no triplet in any mode.
# (1,0): d_ap = .468; negatives 2: d(10) = .030, 3: d(70) = 1.32, 4: d(110), 5: d(135).
#        Semi-hard candidate 3 is beyond the margin; hardest 2 violates it; violators {2}.
# (2,3): d_ap = d(60) = 1.0; negatives 0: d(50) = .714, 1: d(10) = .030, 4: d(100) = 2.35,
#        5: d(125) = 3.15. Semi-hard 4 beyond 1.2; hardest 1; violators {0, 1}.
# (3,2): d_ap = 1.0; negatives 0: d(110) = 2.68, 1: d(70) = 1.32, 4: d(40) = .468,
#        5: d(65) = 1.155. Semi-hard 5 (1.0 < 1.155 < 1.2); hardest 4; violators {4, 5}.
# (4,5), (5,4): d_ap = d(25) = .187; the closest negative is 3 at d(40) = .468 from 4 and
#        d(65) from 5, both beyond d_ap + margin = .387: no triplet in any mode.
SEMIHARD = {(3, 2, 5)}
HARDEST = {(1, 0, 2), (2, 3, 1), (3, 2, 4)}
VIOLATORS = {(1, 0): {2}, (2, 3): {0, 1}, (3, 2): {4, 5}}
PAIRS = 6


def reference_triplets(x: torch.Tensor, labels: torch.Tensor, margin: float,
                       negatives: str) -> dict[tuple[int, int], set[int]]:
    """Loop-by-loop mining: for each anchor-positive pair, the negatives it may take."""
    x = F.normalize(x.double(), dim=1)
    dist = ((x[:, None] - x[None]) ** 2).sum(-1)
    out = {}
    for a in range(len(x)):
        for p in range(len(x)):
            if a == p or labels[a] != labels[p]:
                continue
            negs = [n for n in range(len(x)) if labels[n] != labels[a]]
            inside = {n for n in negs if dist[a, n] < dist[a, p] + margin}
            if negatives == "vgg":
                chosen = inside
            elif negatives == "hardest":
                chosen = {min(negs, key=lambda n: dist[a, n])} & inside
            else:
                farther = [n for n in negs if dist[a, n] > dist[a, p]]
                chosen = {min(farther, key=lambda n: dist[a, n])} & inside if farther else set()
            if chosen:
                out[(a, p)] = chosen
    return out


def clustered(identities: int, per_identity: int, dim: int, spread: float,
              seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(identities, dim, generator=g, dtype=torch.float64)
    labels = torch.arange(identities).repeat_interleave(per_identity)
    x = centres[labels] + spread * torch.randn(len(labels), dim, generator=g,
                                               dtype=torch.float64)
    order = torch.randperm(len(labels), generator=g)  # mining must not rely on the P x K layout
    return x[order], labels[order]


# ---- triplet mining ----------------------------------------------------------------------

def test_semihard_and_hardest_mining_known_answer():
    x = unit_vectors(ANGLES)
    assert as_set(mine_triplets(x, LABELS, MARGIN, "semihard")) == SEMIHARD
    assert as_set(mine_triplets(x, LABELS, MARGIN, "hardest")) == HARDEST
    # normalisation happens inside: scale does not change the answer
    assert as_set(mine_triplets(3.7 * x, LABELS, MARGIN, "semihard")) == SEMIHARD


def test_vgg_draws_uniformly_among_margin_violators():
    x = unit_vectors(ANGLES)
    g = torch.Generator().manual_seed(0)
    counts: dict[tuple[int, int, int], int] = {}
    draws = 2000
    for _ in range(draws):
        triplets = as_set(mine_triplets(x, LABELS, MARGIN, "vgg", generator=g))
        assert {(a, p) for a, p, _ in triplets} == set(VIOLATORS)
        for a, p, n in triplets:
            assert n in VIOLATORS[(a, p)]
            counts[(a, p, n)] = counts.get((a, p, n), 0) + 1
    assert set(counts) == {(a, p, n) for (a, p), ns in VIOLATORS.items() for n in ns}
    for (a, p), ns in VIOLATORS.items():
        for n in ns:
            # binomial sd at 2000 draws of 1/2 is 22: 0.45..0.55 is about 4.5 sd
            assert abs(counts[(a, p, n)] / draws - 1 / len(ns)) < 0.05


def test_vgg_randomness_comes_from_the_generator_or_global_rng():
    x, labels = clustered(4, 5, 8, 0.8, seed=3)
    first = mine_triplets(x, labels, MARGIN, "vgg", generator=torch.Generator().manual_seed(7))
    again = mine_triplets(x, labels, MARGIN, "vgg", generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(u, v) for u, v in zip(first, again, strict=True))
    torch.manual_seed(11)
    global_first = mine_triplets(x, labels, MARGIN, "vgg")
    torch.manual_seed(11)
    global_again = mine_triplets(x, labels, MARGIN, "vgg")
    assert all(torch.equal(u, v) for u, v in zip(global_first, global_again, strict=True))
    others = [as_set(mine_triplets(x, labels, MARGIN, "vgg")) for _ in range(5)]
    assert len({frozenset(o) for o in others}) > 1  # draws actually vary


@pytest.mark.parametrize("negatives", ["semihard", "hardest", "vgg"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mining_matches_a_loop_reference(negatives, seed):
    x, labels = clustered(5, 4, 8, 0.7, seed)
    expected = reference_triplets(x, labels, MARGIN, negatives)
    triplets = as_set(mine_triplets(x, labels, MARGIN, negatives,
                                    generator=torch.Generator().manual_seed(seed)))
    assert {(a, p) for a, p, _ in triplets} == set(expected)
    assert len(triplets) == len(expected)  # one negative per pair
    for a, p, n in triplets:
        assert n in expected[(a, p)]
    assert expected  # the data does produce triplets


def test_semihard_negatives_are_a_subset_of_pytorch_metric_learning():
    distance = distances.LpDistance(normalize_embeddings=True, p=2, power=2)
    for seed in range(3):
        x, labels = clustered(6, 5, 16, 0.8, seed)
        ours = as_set(mine_triplets(x.float(), labels, MARGIN, "semihard"))
        miner = miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard",
                                          distance=distance)
        theirs = as_set(miner(x.float(), labels))
        assert ours and ours <= theirs
        # every pair PML finds a semi-hard negative for gets ours, the closest of them
        dist = distance(x.float())
        by_pair: dict[tuple[int, int], list[int]] = {}
        for a, p, n in theirs:
            by_pair.setdefault((a, p), []).append(n)
        assert {(a, p) for a, p, _ in ours} == set(by_pair)
        for a, p, n in ours:
            assert dist[a, n] == min(dist[a, m] for m in by_pair[(a, p)])


def test_invalid_negatives_name_the_allowed_values():
    x = unit_vectors(ANGLES)
    for call in (lambda: TripletLoss(negatives="hard"),
                 lambda: mine_triplets(x, LABELS, negatives="hard")):
        with pytest.raises(ValueError, match="semihard, hardest, vgg"):
            call()


# ---- triplet loss ------------------------------------------------------------------------

def test_triplet_loss_known_answer():
    x = unit_vectors(ANGLES)
    semihard = TripletLoss(MARGIN, "semihard")
    expected = (d(60) - d(65) + MARGIN) / PAIRS
    assert semihard(x, LABELS).item() == pytest.approx(expected, rel=1e-5)
    assert semihard.last_triplets == 1
    hardest = TripletLoss(MARGIN, "hardest")
    expected = (d(40) - d(10) + MARGIN) + (d(60) - d(10) + MARGIN) + (d(60) - d(40) + MARGIN)
    assert hardest(x, LABELS).item() == pytest.approx(expected / PAIRS, rel=1e-5)
    assert hardest.last_triplets == 3


def test_triplet_loss_equals_pytorch_metric_learning_on_given_triplets():
    x, labels = clustered(6, 5, 16, 0.8, seed=4)
    x = x.float()
    pml = losses.TripletMarginLoss(
        margin=MARGIN, distance=distances.LpDistance(normalize_embeddings=True, p=2, power=2),
        reducer=reducers.SumReducer())
    pairs = sum(int((labels == c).sum()) * (int((labels == c).sum()) - 1) for c in range(6))
    for negatives in ("semihard", "hardest", "vgg"):
        torch.manual_seed(5)
        loss = TripletLoss(MARGIN, negatives)(x, labels)
        torch.manual_seed(5)
        triplets = mine_triplets(x, labels, MARGIN, negatives)
        assert len(triplets[0]) > 0
        expected = pml(x, labels, indices_tuple=triplets) / pairs
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_triplet_loss_is_zero_when_every_negative_is_beyond_the_margin():
    # two tight clusters at opposite poles: d(a, p) ~ 0, d(a, n) ~ 4
    x = unit_vectors([0, 1, 2, 180, 181, 182], torch.float64).requires_grad_()
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    for negatives in ("semihard", "hardest", "vgg"):
        loss_fn = TripletLoss(MARGIN, negatives)
        loss = loss_fn(x, labels)
        assert loss.item() == 0.0 and loss_fn.last_triplets == 0
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.equal(grad, torch.zeros_like(x))


def test_hardest_mining_on_a_collapsed_batch_gives_the_margin_per_pair():
    x = torch.ones(12, 4, requires_grad=True)  # f(x) constant: FaceNet's collapse
    labels = torch.arange(4).repeat_interleave(3)
    hardest = TripletLoss(MARGIN, "hardest")
    assert hardest(x, labels).item() == pytest.approx(MARGIN)
    assert hardest.last_triplets == 4 * 3 * 2
    semihard = TripletLoss(MARGIN, "semihard")
    assert semihard(x, labels).item() == 0.0  # no negative is farther than the positive
    assert semihard.last_triplets == 0


def test_triplet_loss_needs_anchor_positive_pairs():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="sampler: identity, images_per_identity >= 2"):
        TripletLoss()(x, torch.arange(4))


def test_triplet_gradients_numerically():
    x, labels = clustered(3, 3, 4, 0.8, seed=6)
    anchor, positive, negative = mine_triplets(x, labels, 1.0, "vgg",
                                               generator=torch.Generator().manual_seed(0))
    assert len(anchor) > 3
    x.requires_grad_()
    # hinges away from 0 so the numerical derivative does not straddle a kink
    xn = F.normalize(x.detach(), dim=1)
    hinge = ((xn[anchor] - xn[positive]) ** 2).sum(1) - ((xn[anchor] - xn[negative]) ** 2).sum(1)
    assert ((hinge + 1.0).abs() > 1e-3).all()
    assert torch.autograd.gradcheck(
        lambda e: triplet_loss(e, anchor, positive, negative, 1.0), (x,))
    # through the module too: mining is constant under gradcheck's tiny perturbations here
    hand = unit_vectors(ANGLES, torch.float64).mul(torch.linspace(0.5, 2, 6)[:, None].double())
    for negatives in ("semihard", "hardest"):
        assert torch.autograd.gradcheck(TripletLoss(MARGIN, negatives),
                                        (hand.requires_grad_(), LABELS))


# ---- contrastive -------------------------------------------------------------------------

def test_contrastive_known_answer():
    x = torch.tensor([[1.0, 1.0], [1.0, 3.0],    # same, distance 2
                      [0.0, 0.0], [0.6, 0.8],    # different, distance 1 < m = 1.5
                      [0.0, 0.0], [0.0, 2.0],    # different, distance 2 >= m
                      [5.0, 5.0], [5.0, 5.0]])   # same, identical
    labels = torch.tensor([0, 0, 1, 2, 3, 4, 5, 5])
    expected = (0.5 * 4 + 0.5 * 0.5**2 + 0 + 0) / 4
    assert ContrastiveLoss(1.5)(x, labels).item() == pytest.approx(expected)


def test_contrastive_logs_the_share_of_different_pairs_inside_the_margin():
    # Pairs (rows 2i, 2i+1): a different pair at distance 0.5, one at 2, one at 3, and a same
    # pair at 0.1 (never counted). Margin 2.5: the pairs at 0.5 and 2 are inside, 2 of 3.
    x = torch.tensor([[0.0, 0], [0.5, 0], [0, 0], [2, 0], [0, 0], [3, 0], [0, 0], [0.1, 0]])
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 6])
    loss = ContrastiveLoss(2.5)
    assert math.isnan(loss.diagnostics()["inside_margin"])
    loss(x, labels)
    assert loss.diagnostics()["inside_margin"] == pytest.approx(2 / 3)
    # With the margin below every distance the term has no gradient from different pairs.
    far = ContrastiveLoss(0.4)
    y = x.clone().requires_grad_()
    far(y, labels).backward()
    assert far.diagnostics()["inside_margin"] == 0.0
    assert torch.count_nonzero(y.grad[:6]) == 0


def test_contrastive_margin_in_units_of_the_feature_norm():
    # Row norms 1, 1, 2, 2: mean 1.5, so m = 1 puts the margin at 1.5. The first different
    # pair is sqrt(2) apart (inside), the second 2 sqrt(2) (outside):
    # loss = 1/2 * mean((1.5 - sqrt 2)^2, 0).
    x = torch.tensor([[1.0, 0], [0, 1], [2, 0], [0, 2]], dtype=torch.float64,
                     requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3])
    loss = ContrastiveLoss(1.0, scale="feature_norm")
    value = loss(x, labels)
    assert value.item() == pytest.approx(0.25 * (1.5 - math.sqrt(2)) ** 2)
    assert loss.diagnostics()["inside_margin"] == 0.5
    # The margin is held constant in the gradient: the same as an absolute margin of 1.5.
    value.backward()
    y = x.detach().clone().requires_grad_()
    ContrastiveLoss(1.5)(y, labels).backward()
    assert torch.allclose(x.grad, y.grad)
    # Scaling every feature scales the margin with them: the same share stays inside.
    loss(10 * x.detach(), labels)
    assert loss.diagnostics()["inside_margin"] == 0.5
    with pytest.raises(ValueError, match="absolute or feature_norm"):
        ContrastiveLoss(1.0, scale="relative")


def test_contrastive_pairs_are_consecutive_rows():
    # rows 0 and 2 share a label, but the pairs are (0, 1) and (2, 3): both different
    x = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 0.0], [0.0, 0.5]])
    labels = torch.tensor([0, 1, 0, 2])
    assert ContrastiveLoss(1.0)(x, labels).item() == pytest.approx(0.5 * 0.5**2 / 2)


def test_contrastive_identical_embeddings_have_finite_gradients():
    x = torch.ones(4, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 2])  # a different pair and a same pair, both at distance 0
    loss = ContrastiveLoss(2.0)(x, labels)
    assert loss.item() == pytest.approx(0.5 * 2.0**2 / 2)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all()


def test_contrastive_odd_batch_names_the_pair_sampler():
    with pytest.raises(ValueError, match="sampler: pair"):
        ContrastiveLoss(1.0)(torch.randn(5, 2), torch.arange(5))


def test_contrastive_gradients_numerically():
    x = torch.tensor([[0.1, 0.2, 0.3], [0.5, -0.1, 0.4],    # same
                      [0.0, 0.3, -0.2], [0.4, 0.1, 0.2],    # different, inside m = 1
                      [1.0, 1.0, 1.0], [-1.0, 0.0, 0.5]],   # different, outside the margin
                     dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 2, 3, 4])
    assert torch.autograd.gradcheck(ContrastiveLoss(1.0), (x, labels))


# ---- identification + verification ------------------------------------------------------

def test_ident_verif_is_softmax_plus_weighted_contrastive():
    torch.manual_seed(0)
    loss_fn = IdentVerifLoss(3, 4, verification_weight=0.05, margin=1.0)
    w = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])
    b = torch.tensor([0.1, -0.2, 0.0, 0.3])
    with torch.no_grad():
        loss_fn.identification.classifier.weight.copy_(w)
        loss_fn.identification.classifier.bias.copy_(b)
    x = torch.tensor([[0.2, 0.0, 0.0], [0.2, 0.3, 0.4],     # same (label 0), distance .5
                      [0.0, 0.5, 0.0], [0.0, 0.5, 0.6]])    # different, distance .6 < 1
    labels = torch.tensor([0, 0, 1, 3])
    logits = x @ w.T + b
    ident = -(logits.log_softmax(1)[torch.arange(4), labels]).mean()
    verif = (0.5 * 0.5**2 + 0.5 * (1 - 0.6) ** 2) / 2
    assert loss_fn(x, labels).item() == pytest.approx(ident.item() + 0.05 * verif, rel=1e-6)
    assert torch.allclose(loss_fn.logits(x), logits)
    ident_term, verif_term = loss_fn.terms(x, labels)
    assert verif_term.item() == pytest.approx(verif, rel=1e-6)
    assert ident_term.item() == pytest.approx(ident.item(), rel=1e-6)


def test_ident_verif_bias_switch_and_gradients():
    assert IdentVerifLoss(3, 4, bias=False).identification.classifier.bias is None
    torch.manual_seed(1)
    loss_fn = IdentVerifLoss(3, 4, verification_weight=0.5, margin=2.0).double()
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 2, 3, 1])
    assert torch.autograd.gradcheck(loss_fn, (x, labels))


# ---- center loss -------------------------------------------------------------------------

def center_loss_with_known_state() -> CenterLoss:
    loss_fn = CenterLoss(2, 3, center_weight=0.003, center_alpha=0.5)
    with torch.no_grad():
        loss_fn.identification.classifier.weight.zero_()  # softmax term = log 3
        loss_fn.identification.classifier.bias.zero_()
        loss_fn.centers.copy_(torch.tensor([[1.0, 1.0], [0.0, 0.0], [5.0, 5.0]]))
    return loss_fn


X_CENTER = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
LABELS_CENTER = torch.tensor([0, 0, 2])


def test_center_loss_value_and_centre_update():
    loss_fn = center_loss_with_known_state()
    # L_C = (|(0,-1)|^2 + |(2,-1)|^2 + |(-5,-3)|^2) / (2 * 3) = 40 / 6
    loss = loss_fn(X_CENTER.clone().requires_grad_(), LABELS_CENTER)
    assert loss.item() == pytest.approx(math.log(3) + 0.003 * 40 / 6)
    # class 0: n = 2, sum(c - x) = (0, 1) + (-2, 1), delta = (-2, 2) / 3
    # class 2: n = 1, delta = (5, 3) / 2; class 1 absent: unchanged
    expected = torch.tensor([[1 + 1 / 3, 1 - 1 / 3], [0.0, 0.0], [5 - 1.25, 5 - 0.75]])
    assert torch.allclose(loss_fn.centers, expected)
    assert not loss_fn.centers.requires_grad and loss_fn.centers.grad_fn is None
    # the next forward measures against the moved centres
    again = loss_fn.center_term(X_CENTER, LABELS_CENTER)
    by_hand = 0.5 * ((X_CENTER - expected[LABELS_CENTER]) ** 2).sum(1).mean()
    assert again.item() == pytest.approx(by_hand.item())


def test_center_loss_gradient_reaches_embeddings_not_centres():
    loss_fn = center_loss_with_known_state()
    x = X_CENTER.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss_fn.eval().center_term(x, LABELS_CENTER), x)
    c = loss_fn.centers[LABELS_CENTER]
    assert torch.allclose(grad, (X_CENTER - c) / 3)  # dL_C/dx_i = (x_i - c_{y_i}) / B


def test_center_loss_eval_does_not_move_centres():
    loss_fn = center_loss_with_known_state().eval()
    before = loss_fn.centers.clone()
    loss_fn(X_CENTER, LABELS_CENTER)
    assert torch.equal(loss_fn.centers, before)
    loss_fn.train()(X_CENTER, LABELS_CENTER)
    assert not torch.equal(loss_fn.centers, before)


def test_center_buffer_round_trips_and_is_not_a_parameter():
    loss_fn = CenterLoss(4, 5)
    assert torch.equal(loss_fn.centers, torch.zeros(5, 4))  # zero-initialised
    loss_fn(torch.randn(6, 4), torch.tensor([0, 1, 1, 2, 4, 4]))
    params = list(loss_fn.parameters())
    assert all(p is not loss_fn.centers for p in params)
    assert sum(p.numel() for p in params) == 4 * 5 + 5  # only the classifier
    state = loss_fn.state_dict()
    assert "centers" in state
    restored = CenterLoss(4, 5)
    restored.load_state_dict(state)
    assert torch.equal(restored.centers, loss_fn.centers)
    assert not torch.equal(restored.centers, torch.zeros(5, 4))
    assert torch.equal(restored.logits(torch.eye(4)), loss_fn.logits(torch.eye(4)))


def test_center_loss_gradients_numerically():
    torch.manual_seed(2)
    loss_fn = CenterLoss(3, 4, center_weight=0.5).double().eval()  # frozen centres
    with torch.no_grad():
        loss_fn.centers.normal_()
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(loss_fn, (x, torch.tensor([0, 1, 1, 3, 0])))
