import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facerepro.evaluation.identification import (
    closed_set_identification,
    closed_set_split,
    cmc,
    dir_at_far,
    distractor_counts,
    megaface_identification,
    open_set_identification,
    open_set_split,
)

ROOT = Path(__file__).resolve().parents[1]


def lfw_like_identities(seed: int = 0) -> np.ndarray:
    """Long-tailed image counts per identity, like LFW's (many singletons, a few big ones)."""
    counts = np.concatenate([np.ones(300, int), np.full(60, 2), np.full(30, 3),
                             np.random.default_rng(seed).integers(4, 12, 20), [80, 40]])
    return np.repeat(np.array([f"person_{i:03d}" for i in range(len(counts))]), counts)


# --- closed set: CMC and the tie rule ------------------------------------------------------

def test_cmc_known_answer_and_tie_rule():
    gallery = np.array(["a", "b", "c", "d"])
    probes = np.array(["a", "b", "c"])
    similarity = np.array([[0.9, 0.5, 0.2, 0.1],    # a first: rank 1
                           [0.8, 0.6, 0.7, 0.1],    # a and c above b: rank 3
                           [0.3, 0.4, 0.4, 0.0]])   # b ties c: counts against, rank 2
    np.testing.assert_allclose(cmc(similarity, probes, gallery, max_rank=5),
                               [1 / 3, 2 / 3, 1, 1, 1])


def test_cmc_uses_best_image_of_true_identity():
    # The probe's identity has two gallery images; the better one (0.7) sets its rank: only
    # "b" (0.8) is ahead, the worse "a" image (0.1) does not count against it.
    similarity = np.array([[0.1, 0.8, 0.7, 0.2]])
    np.testing.assert_allclose(cmc(similarity, np.array(["a"]), np.array(["a", "b", "a", "c"]),
                                   max_rank=3), [0, 1, 1])


def test_cmc_needs_probe_identity_in_gallery():
    with pytest.raises(ValueError, match="1 probes have no gallery image"):
        cmc(np.zeros((2, 2)), np.array([0, 5]), np.array([0, 1]))


def brute_force_rank(scores: list[float], gallery_ids: list, identity) -> int:
    # Sort the gallery by score, true-identity images after equal scores (ties count against).
    ranking = sorted(range(len(scores)), key=lambda j: (-scores[j], gallery_ids[j] == identity))
    return next(r for r, j in enumerate(ranking, 1) if gallery_ids[j] == identity)


def test_cmc_matches_brute_force_with_many_ties():
    rng = np.random.default_rng(0)
    gallery_ids = rng.permutation(np.repeat(np.arange(25), rng.integers(1, 3, 25)))
    probe_ids = rng.integers(0, 25, 60)
    # Scores rounded to one decimal: ties with the true match are frequent.
    similarity = np.round(rng.uniform(-1, 1, (60, len(gallery_ids))), 1)
    ranks = [brute_force_rank(list(row), list(gallery_ids), identity)
             for row, identity in zip(similarity, probe_ids, strict=True)]
    expected = [np.mean([r <= k for r in ranks]) for k in range(1, 16)]
    np.testing.assert_allclose(cmc(similarity, probe_ids, gallery_ids, max_rank=15), expected)


# --- open set: DIR at FAR ------------------------------------------------------------------

def test_dir_known_answer():
    gallery = np.array(["a", "b"])
    impostor = np.column_stack([[0.9, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1],
                                np.zeros(10)])
    genuine_ids = np.array(["a", "a", "b", "b", "a"])
    genuine = np.array([[0.85, 0.1],    # rank 1, above 0.8
                        [0.80, 0.1],    # rank 1, equal to the impostor maximum 0.8
                        [0.95, 0.90],   # above every impostor but rank 2
                        [0.10, 0.95],   # rank 1, above every impostor
                        [0.50, 0.50]])  # tied with the wrong identity: not rank 1
    rows = dir_at_far(genuine, genuine_ids, gallery, impostor, fars=(0.3, 0.2, 0.1, 0.05))
    # FAR 0.3 allows 3 of 10 impostors: t just above 0.5, so all three scores > 0.5 pass.
    assert rows[0]["dir"] == pytest.approx(3 / 5)
    assert rows[0]["realised_far"] == pytest.approx(0.3)
    assert rows[0]["threshold"] == np.nextafter(0.5, 1)
    # FAR 0.2 allows 2, but the 3rd largest ties the 2nd (0.8): only 0.9 is accepted.
    assert rows[1]["realised_far"] == pytest.approx(0.1)
    assert rows[1]["dir"] == pytest.approx(2 / 5)
    assert rows[2]["dir"] == pytest.approx(2 / 5) and rows[2]["realised_far"] == pytest.approx(0.1)
    # FAR 0.05 is below the resolution 1/10: no impostor accepted, t just above 0.9.
    assert rows[3]["dir"] == pytest.approx(1 / 5) and rows[3]["realised_far"] == 0.0
    assert all(row["far_resolution"] == pytest.approx(0.1) for row in rows)
    assert [row["far"] for row in rows] == [0.3, 0.2, 0.1, 0.05]


def test_far_read_as_decimal():
    # 0.29 * 100 is 28.999... in binary; the rule must still allow 29 false accepts.
    impostor = np.arange(100, dtype=float)[:, None] / 100
    rows = dir_at_far(np.ones((1, 1)), np.array([0]), np.array([0]), impostor, fars=(0.29,))
    assert rows[0]["realised_far"] == pytest.approx(0.29)
    with pytest.raises(ValueError, match="FAR must lie in"):
        dir_at_far(np.ones((1, 1)), np.array([0]), np.array([0]), impostor, fars=(1.0,))


def test_dir_matches_brute_force():
    rng = np.random.default_rng(1)
    gallery_ids = np.arange(40)
    genuine_ids = rng.integers(0, 40, 150)
    genuine = np.round(rng.uniform(-1, 1, (150, 40)), 2)
    genuine[np.arange(150), genuine_ids] += 0.4
    impostor = np.round(rng.uniform(-1, 1, (700, 40)), 2)
    fars = (0.013, 0.05, 0.001)
    rows = dir_at_far(genuine, genuine_ids, gallery_ids, impostor, fars)
    maxima = [max(row) for row in impostor]
    for far, row in zip(fars, rows, strict=True):
        # Lowest impostor value v such that accepting the scores above v keeps FAR <= far.
        v = min(x for x in set(maxima) if sum(m > x for m in maxima) / len(maxima) <= far)
        hits = [brute_force_rank(list(s), list(gallery_ids), i) == 1 and s[i] > v
                for s, i in zip(genuine, genuine_ids, strict=True)]
        assert row["dir"] == pytest.approx(np.mean(hits))
        assert row["threshold"] == np.nextafter(v, np.inf)
        assert row["realised_far"] == pytest.approx(sum(m > v for m in maxima) / len(maxima))
        assert row["far_resolution"] == pytest.approx(1 / 700)


# --- MegaFace-style identification with distractors ----------------------------------------

def unit_rows(x):
    x = np.asarray(x, float)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force_megaface(probes, ids, distractors, far):
    probes, distractors = unit_rows(probes), unit_rows(distractors)
    hits, pairs, genuine, impostor = 0, 0, [], []
    for p in range(len(probes)):
        to_distractors = [float(probes[p] @ d) for d in distractors]
        impostor += to_distractors
        for g in range(len(probes)):
            if g != p and ids[g] == ids[p]:
                score = float(probes[p] @ probes[g])
                pairs += 1
                hits += all(score > s for s in to_distractors)
                if p < g:
                    genuine.append(score)
    impostor = np.sort(impostor)[::-1]
    # Lowest impostor value v such that accepting the scores above v keeps FAR <= far; in
    # the descending list, the first index of a value counts the scores above it.
    for above, value in enumerate(impostor):
        if above / len(impostor) > far:
            break
        if not above or value != impostor[above - 1]:
            v = value
    return {"rank1": hits / pairs, "rank1_pairs": pairs,
            "tar": np.mean(np.array(genuine) > v), "threshold": v,
            "realised_far": np.count_nonzero(impostor > v) / len(impostor)}


@pytest.mark.parametrize("far", [1e-3, 0.05])   # top-61 search; top-3001 > D: all distractors
def test_megaface_matches_brute_force_random(far):
    rng = np.random.default_rng(2)
    ids = np.repeat(np.arange(8), [2, 3, 4, 5, 6, 4, 3, 3])   # 30 probes, 8 identities
    probes = rng.normal(size=(8, 32))[ids] + 0.9 * rng.normal(size=(30, 32))
    distractors = rng.normal(size=(2000, 32))
    result = megaface_identification(probes, ids, distractors, fars=(far,), batch_size=7)
    expected = brute_force_megaface(probes, ids, distractors, far)
    assert 0.1 < expected["rank1"] < 0.9   # the data is neither trivial nor hopeless
    assert result["rank1"] == pytest.approx(expected["rank1"])
    assert result["rank1_pairs"] == expected["rank1_pairs"] == 2 * result["genuine_pairs"]
    (row,) = result["verification"]
    assert row["tar"] == pytest.approx(expected["tar"])
    assert row["threshold"] == pytest.approx(expected["threshold"], abs=1e-6)
    assert row["realised_far"] == pytest.approx(expected["realised_far"])
    assert row["far_resolution"] == pytest.approx(1 / 60_000)
    assert result["impostor_pairs"] == 60_000 and result["distractors"] == 2000


def test_megaface_exact_ties_count_as_misses():
    # Unit vectors with entries +-1/4 in 16-d: every score is an exact multiple of 1/8, so
    # genuine scores tie distractor maxima often and every implementation agrees bit for bit.
    rng = np.random.default_rng(3)
    ids = np.repeat(np.arange(8), [2, 3, 4, 5, 6, 4, 3, 3])
    probes = rng.choice([-0.25, 0.25], (8, 16))[ids]
    probes[rng.random((30, 16)) < 0.1] *= -1
    distractors = rng.choice([-0.25, 0.25], (2000, 16))
    result = megaface_identification(probes, ids, distractors, fars=(1e-3,))
    expected = brute_force_megaface(probes, ids, distractors, 1e-3)
    pairs = (ids[:, None] == ids[None, :]) & ~np.eye(30, dtype=bool)
    top_distractor = (probes @ distractors.T).max(axis=1)
    ties = pairs & (probes @ probes.T == top_distractor[:, None])
    assert 0 < ties.sum() < pairs.sum()   # some targets tie their probe's best distractor
    assert result["rank1"] == expected["rank1"]
    assert result["verification"][0]["tar"] == expected["tar"]
    assert result["verification"][0]["realised_far"] == expected["realised_far"]


# Two people, two photos each, on the unit circle; distractors D2 = (-1, 0), then D1 = (0.6, 0.8).
# Scores: A1.A2 = B1.B2 = 0.8 (genuine); A1: D2 -1, D1 0.6; A2: -0.8, 0.96; B1: 0, 0.8;
# B2: 0.6, 0.28. Against D2 alone every ordered pair is a hit (0.8 beats -1, -0.8, 0, 0.6).
# Against both: A1->A2 hit (0.8 > 0.6), A2->A1 miss (0.96), B1->B2 miss (0.8 ties B1.D1),
# B2->B1 hit (0.8 > 0.6). Impostors, descending: 0.96, 0.8, 0.6, 0.6, 0.28, 0, -0.8, -1 (n 8).
TINY_PROBES = np.array([[1, 0], [0.8, 0.6], [0, 1], [-0.6, 0.8]])
TINY_IDS = np.array(["A", "A", "B", "B"])
TINY_DISTRACTORS = np.array([[-1, 0], [0.6, 0.8]])


def test_megaface_tiny_case_worked_by_hand():
    result = megaface_identification(TINY_PROBES, TINY_IDS, TINY_DISTRACTORS,
                                     fars=(1e-6, 0.25), counts=(1, 2))
    assert result["curve"] == {"distractors": [1, 2], "rank1": [1.0, 0.5]}
    assert result["rank1"] == 0.5
    # unordered pairs (A1, A2), (B1, B2); hits first -> second, then second -> first
    assert [list(rows) for rows in result["pairs"]] == [[0, 2], [1, 3]]
    assert result["rank1_hits"].tolist() == [True, False, False, True]
    unresolved, quarter = result["verification"]
    # 1e-6 of 8 pairs allows no false accept: the threshold is above 0.96, nothing accepted
    assert not unresolved["resolved"] and unresolved["tar"] == 0.0
    assert unresolved["realised_far"] == 0.0
    # 0.25 of 8 allows 2: the threshold is just above 0.6, accepting 0.96 and 0.8 and both
    # genuine 0.8s
    assert quarter["resolved"] and quarter["tar"] == 1.0 and quarter["realised_far"] == 0.25
    assert quarter["accepted"].tolist() == [True, True]
    # the smallest resolved FAR, 1/8: one false accept, the threshold just above 0.8
    smallest = result["smallest_far"]
    assert smallest["far"] == 1 / 8 and smallest["resolved"]
    assert smallest["tar"] == 0.0 and smallest["realised_far"] == 1 / 8
    assert result["impostor_pairs"] == 8 and result["rank1_pairs"] == 4


def test_megaface_curve_matches_brute_force_at_every_distractor_count():
    rng = np.random.default_rng(5)
    ids = np.repeat(np.arange(8), [2, 3, 4, 5, 6, 4, 3, 3])
    probes = rng.normal(size=(8, 24))[ids] + 0.9 * rng.normal(size=(30, 24))
    distractors = rng.normal(size=(700, 24))
    counts = distractor_counts(len(distractors))
    assert counts == [10, 100, 700]
    result = megaface_identification(probes, ids, distractors, fars=(1e-3,), counts=counts,
                                     batch_size=7)
    expected = [brute_force_megaface(probes, ids, distractors[:d], 1e-3)["rank1"]
                for d in counts]
    assert result["curve"]["rank1"] == pytest.approx(expected, abs=0)
    assert result["curve"]["rank1"][-1] == result["rank1"]
    assert expected[0] > expected[-1] > 0   # the curve falls as distractors are added


@pytest.mark.parametrize(("n", "counts"), [
    (1, [1]), (10, [10]), (11, [10, 11]), (3000, [10, 100, 1000, 3000]),
    (1_000_000, [10, 100, 1000, 10_000, 100_000, 1_000_000])])
def test_distractor_counts_are_powers_of_ten_then_all(n, counts):
    assert distractor_counts(n) == counts


def test_megaface_refuses_counts_beyond_the_distractors():
    with pytest.raises(ValueError, match=r"outside 1\.\.2"):
        megaface_identification(TINY_PROBES, TINY_IDS, TINY_DISTRACTORS, counts=(1, 3))


def test_megaface_needs_pairs():
    with pytest.raises(ValueError, match=">= 2 images"):
        megaface_identification(np.eye(3), np.arange(3), np.ones((5, 3)))


# --- splits ---------------------------------------------------------------------------------

def test_closed_set_split_invariants():
    identities = lfw_like_identities()
    split = closed_set_split(identities, n_gallery=250, n_probes=120, seed=4)
    gallery, probes = identities[split.gallery], identities[split.probes]
    assert len(split.gallery) == 250 and len(split.probes) == 120
    assert len(np.unique(gallery)) == 250                 # one image per gallery identity
    assert np.isin(probes, gallery).all()                 # probes of gallery identities only
    assert not np.intersect1d(split.gallery, split.probes).size
    again = closed_set_split(identities, n_gallery=250, n_probes=120, seed=4)
    other = closed_set_split(identities, n_gallery=250, n_probes=120, seed=5)
    assert np.array_equal(split.gallery, again.gallery)
    assert np.array_equal(split.probes, again.probes)
    assert not np.array_equal(split.gallery, other.gallery)
    # Not restricted to identities that can give probes: singletons enter the gallery too.
    counts = dict(zip(*np.unique(identities, return_counts=True), strict=True))
    assert any(counts[g] == 1 for g in gallery)


def test_open_set_split_invariants():
    identities = lfw_like_identities()
    split = open_set_split(identities, n_gallery=40, n_genuine=30, n_impostor=400, seed=4)
    gallery = identities[split.gallery]
    genuine, impostor = identities[split.genuine], identities[split.impostor]
    assert (len(split.gallery), len(split.genuine), len(split.impostor)) == (40, 30, 400)
    assert len(np.unique(gallery)) == 40
    assert np.isin(genuine, gallery).all() and len(np.unique(genuine)) == 30
    assert not np.isin(impostor, gallery).any()
    rows = np.concatenate([split.gallery, split.genuine, split.impostor])
    assert len(np.unique(rows)) == len(rows)
    again = open_set_split(identities, n_gallery=40, n_genuine=30, n_impostor=400, seed=4)
    other = open_set_split(identities, n_gallery=40, n_genuine=30, n_impostor=400, seed=5)
    assert all(np.array_equal(getattr(split, f), getattr(again, f))
               for f in ("gallery", "genuine", "impostor"))
    assert not np.array_equal(split.impostor, other.impostor)


def test_closed_set_split_exists_iff_data_allows():
    # Two identities of 5 images, ten of 1: 2 gallery identities give 8 probes only if both
    # big identities are taken, whatever the seed; 9 probes are impossible.
    identities = np.repeat(np.arange(12), [5, 5] + [1] * 10)
    for seed in range(5):
        split = closed_set_split(identities, n_gallery=2, n_probes=8, seed=seed)
        assert sorted(identities[split.gallery]) == [0, 1]
    with pytest.raises(ValueError, match="n_probes=9 .* at most 8"):
        closed_set_split(identities, n_gallery=2, n_probes=9)
    with pytest.raises(ValueError, match="n_gallery=13 .* has 12 identities"):
        closed_set_split(identities, n_gallery=13, n_probes=1)


def test_open_set_split_exists_iff_data_allows():
    # One identity of 100 images and twenty of 2 (140 images): 130 impostors leave room for
    # five 2-image gallery identities only, so the big one never enters the gallery.
    identities = np.repeat(np.arange(21), [100] + [2] * 20)
    for seed in range(5):
        split = open_set_split(identities, n_gallery=5, n_genuine=5, n_impostor=130, seed=seed)
        assert 0 not in identities[split.gallery]
    with pytest.raises(ValueError, match="n_impostor=131 .* at most 130"):
        open_set_split(identities, n_gallery=5, n_genuine=5, n_impostor=131)
    with pytest.raises(ValueError, match="n_gallery=22 .* 21 identities with >= 2"):
        open_set_split(identities, n_gallery=22, n_genuine=1, n_impostor=1)
    with pytest.raises(ValueError, match="n_genuine=6 must be <= n_gallery=5"):
        open_set_split(identities, n_gallery=5, n_genuine=6, n_impostor=1)
    with pytest.raises(ValueError, match="n_impostor=0"):
        open_set_split(identities, n_gallery=5, n_genuine=5, n_impostor=0)


# --- top-level protocols --------------------------------------------------------------------

def test_protocols_on_features():
    identities = lfw_like_identities()
    codes = np.unique(identities, return_inverse=True)[1]
    rng = np.random.default_rng(6)
    # One direction per identity plus a little noise: identification is perfect.
    features = np.eye(codes.max() + 1)[codes] + 0.05 * rng.normal(size=(len(codes),
                                                                          codes.max() + 1))
    closed = closed_set_identification(features, identities,
                                       closed_set_split(identities, 250, 120), max_rank=5)
    split = open_set_split(identities, n_gallery=40, n_genuine=30, n_impostor=400)
    opened = open_set_identification(features, identities, split)
    assert closed["rank1"] == 1.0 and closed["cmc"] == [1.0] * 5
    assert [row["dir"] for row in opened["dir_at_far"]] == [1.0, 1.0]
    # Noise only: the same splits give a chance-level closed-set rank-1.
    noise = rng.normal(size=features.shape)
    assert closed_set_identification(noise, identities,
                                     closed_set_split(identities, 250, 120))["rank1"] < 0.1
    json.dumps([closed, opened], allow_nan=False)


def test_bench_quick(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, "bench/bench_identification.py", "--quick", "--out",
                    str(out)], cwd=ROOT, check=True, capture_output=True)
    rows = json.loads(out.read_text())["rows"]
    assert all(row["rank1_agrees"] for row in rows if "rank1_agrees" in row)
