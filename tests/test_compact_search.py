import json
import subprocess
import sys
from math import comb
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from facerepro.evaluation.compact_search import (
    LookupTableClassifier,
    bins_at_distance,
    code_distances,
    pack,
    query_indices,
    recall_at_bins_fraction,
    search_recall_curve,
    unpack,
)

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(32, 1), (16, 2), (8, 4), (4, 8), (8, 1), (4, 2), (2, 4), (1, 8)]


def test_pack_known_values_and_round_trip():
    assert pack(np.array([[1, 0, 1, 1]]), 1).tolist() == [0b1011]
    assert pack(np.array([[3, 0, 2]]), 2).tolist() == [0b110010]
    ones = pack(np.ones((1, 32), int), 1)
    assert ones.dtype == np.uint32 and ones[0] == 2**32 - 1
    assert pack(np.zeros((1, 5), int), 8).dtype == np.uint64
    rng = np.random.default_rng(0)
    for n, bits in SHAPES:
        codes = rng.integers(0, 2**bits, (20, n))
        assert np.array_equal(unpack(pack(codes, bits), n, bits), codes)


def test_codes_out_of_range_rejected():
    with pytest.raises(ValueError, match="lie in"):
        pack(np.array([[2, 0]]), 1)
    with pytest.raises(ValueError, match="integer"):
        pack(np.array([[0.5, 0.0]]), 1)


@pytest.mark.parametrize("n,bits", SHAPES)
def test_code_distances_are_l1(n, bits):
    # 32x1..8x4 go through the thermometer popcount, 4x8 and 1x8 through value differences.
    rng = np.random.default_rng(n * 10 + bits)
    a, b = rng.integers(0, 2**bits, (15, n)), rng.integers(0, 2**bits, (11, n))
    assert np.array_equal(code_distances(a, b, bits), np.abs(a[:, None] - b[None]).sum(-1))


def test_code_distance_hand_values():
    assert code_distances(np.array([[1, 0, 1, 1]]), np.array([[0, 0, 1, 0]]), 1)[0, 0] == 2
    assert code_distances(np.array([[15, 0]]), np.array([[3, 2]]), 4)[0, 0] == 14


@pytest.mark.parametrize("n,bits", [(8, 1), (4, 2), (2, 4), (1, 8)])
def test_bins_at_distance_matches_enumeration_of_every_code(n, bits):
    grid = unpack(np.arange(256), n, bits)  # all 2^8 codes, each also used as a query
    brute = np.stack([np.bincount(row, minlength=n * (2**bits - 1) + 1)
                      for row in code_distances(grid, grid, bits)])
    assert np.array_equal(bins_at_distance(grid, bits), brute)


def test_bins_at_distance_hand_values_and_truncation():
    # one 2-bit dimension: from 0 the values 0..3 lie at 0..3; from 1 at 1, 0, 1, 2
    assert bins_at_distance(np.array([[0], [1]]), 2).tolist() == [[1, 1, 1, 1], [1, 2, 1, 0]]
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 16, (30, 8))
    full = bins_at_distance(codes, 4)
    assert np.array_equal(bins_at_distance(codes, 4, max_radius=7), full[:, :8])
    assert np.all(full.sum(axis=1) == 2**32)


def test_bins_at_distance_binary_32_is_binomial():
    codes = np.random.default_rng(2).integers(0, 2, (5, 32))
    expected = [comb(32, k) for k in range(33)]
    assert np.all(bins_at_distance(codes, 1) == expected)
    curve = search_recall_curve(np.vstack([codes, codes]), np.repeat([0, 1], 5), 1)
    assert curve["bins_visited"].tolist() == np.cumsum(expected).tolist()


def test_recall_curve_by_hand():
    # 3-bit codes. Queries (>= 3 images): the three faces of "a". Distances (query: others):
    # f0 000: f1 1, f2 2, f3 3, f4 2, f5 0   positives f1 f2
    # f1 001: f0 1, f2 1, f3 2, f4 3, f5 1   positives f0 f2
    # f2 011: f0 2, f1 1, f3 1, f4 2, f5 2   positives f0 f1
    codes = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 1], [1, 1, 1], [1, 1, 0], [0, 0, 0]])
    ids = np.array(["a", "a", "a", "b", "b", "c"])
    curve = search_recall_curve(codes, ids, 1)
    assert curve.attrs == {"n_queries": 3, "n_database": 6}
    assert curve["radius"].tolist() == [0, 1, 2, 3]
    assert np.allclose(curve["recall"], [0, 2 / 3, 1, 1])
    assert np.allclose(curve["faces_fraction"], [1 / 15, 7 / 15, 13 / 15, 1])
    assert np.allclose(curve["bins_fraction"], [1 / 8, 4 / 8, 7 / 8, 1])
    assert recall_at_bins_fraction(curve, 0.5) == pytest.approx(2 / 3)
    assert recall_at_bins_fraction(curve, 0.1) == 0.0
    # order of the faces does not matter; min_images=2 adds b's two faces as queries
    perm = np.array([4, 2, 5, 0, 3, 1])
    shuffled = search_recall_curve(codes[perm], ids[perm], 1)
    assert np.allclose(shuffled.to_numpy(), curve.to_numpy())
    assert search_recall_curve(codes, ids, 1, min_images=2).attrs["n_queries"] == 5


def test_recall_curve_bins_depend_on_query_position():
    # one 2-bit dimension, three faces of one person with values 0, 1, 0
    curve = search_recall_curve(np.array([[0], [1], [0]]), np.zeros(3, int), 2)
    assert np.allclose(curve["bins_visited"], [1, 7 / 3, 10 / 3, 4])
    assert np.allclose(curve["recall"], [1 / 3, 1, 1, 1])


def test_recall_curve_matches_brute_force_loop():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 12, 60)
    codes = rng.integers(0, 4, (60, 4))
    curve = search_recall_curve(codes, ids, 2, chunk=7)
    queries = query_indices(ids, 3)
    recall = np.zeros(13)
    faces = np.zeros(13)
    for q in queries:
        for j in range(60):
            if j == q:
                continue
            d = np.abs(codes[q] - codes[j]).sum()
            faces[d:] += 1 / 59
            if ids[j] == ids[q]:
                recall[d:] += 1 / (np.sum(ids == ids[q]) - 1)
    assert curve.attrs["n_queries"] == len(queries)
    assert np.allclose(curve["recall"], recall / len(queries))
    assert np.allclose(curve["faces_fraction"], faces / len(queries))


def test_query_selection_errors():
    with pytest.raises(ValueError, match="min_images"):
        query_indices(np.array([0, 0, 1]), 1)
    with pytest.raises(ValueError, match="no queries"):
        search_recall_curve(np.zeros((3, 8), int), np.array([0, 0, 1]), 1)
    with pytest.raises(ValueError, match="same identity"):
        search_recall_curve(np.zeros((3, 8), int), np.array([0, 0, 1]), 1, queries=[2])


def _lut_training():
    # 4-bit codes; labels f/m with m the more frequent overall (5 to 4)
    rows = {"0000": "mmf", "0011": "ff", "1111": "fm", "1100": "mm"}
    codes = [[int(c) for c in key] for key, labels in rows.items() for _ in labels]
    return np.array(codes), np.array([lab for labels in rows.values() for lab in labels])


def test_lookup_table_own_bin_fallback_and_ties():
    lut = LookupTableClassifier(bits=1).fit(*_lut_training())
    queries = np.array([[0, 0, 0, 0],   # own bin m2 f1
                        [0, 0, 1, 1],   # own bin f2
                        [1, 1, 1, 1],   # own bin f1 m1: tie -> m, the more frequent label
                        [0, 1, 1, 1],   # empty; radius 1: 1111 + 0011 = f3 m1
                        [1, 0, 0, 0],   # empty; radius 1: 0000 + 1100 = f1 m4
                        [1, 0, 1, 0]])  # empty; every bin at radius 2: f4 m5
    counts, radius = lut.lookup(queries)
    assert lut.classes_.tolist() == ["f", "m"]
    assert counts.tolist() == [[1, 2], [2, 0], [1, 1], [3, 1], [1, 4], [4, 5]]
    assert radius.tolist() == [0, 0, 0, 1, 1, 2]
    assert lut.predict(queries).tolist() == ["m", "f", "m", "f", "m", "m"]
    assert np.allclose(lut.predict_proba(queries)[3], [0.75, 0.25])
    assert lut.score(queries, ["m", "f", "m", "f", "f", "m"]) == pytest.approx(5 / 6)
    assert clone(lut).get_params() == {"bits": 1, "chunk": 1024}


def test_lookup_table_fallback_pools_only_the_nearest_radius():
    # query 0001: one "a" face at distance 1, three "b" faces at distance 2
    lut = LookupTableClassifier(bits=1).fit(np.array([[0, 0, 0, 0]] + [[0, 1, 1, 1]] * 3),
                                            ["a", "b", "b", "b"])
    counts, radius = lut.lookup(np.array([[0, 0, 0, 1]]))
    assert counts.tolist() == [[1, 0]] and radius.tolist() == [1]
    assert lut.predict(np.array([[0, 0, 0, 1]])).tolist() == ["a"]


def test_lookup_table_uses_l1_on_values():
    # (7, 7) is L1-nearer to (0, 0) (14 < 16) but bitwise Hamming-nearer to (15, 15) (2 < 6)
    lut = LookupTableClassifier(bits=4, chunk=1).fit(np.array([[0, 0], [15, 15]]), ["a", "b"])
    assert lut.predict(np.array([[7, 7], [9, 9], [0, 0]])).tolist() == ["a", "b", "a"]


def test_bench_quick_runs_and_agrees(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, "bench/bench_compact_search.py", "--quick", "--out",
                    str(out)], cwd=ROOT, check=True, capture_output=True)
    rows = json.loads(out.read_text())["rows"]
    assert [row["code"] for row in rows] == ["32x1", "8x4"]
    assert all(row["agree"] for row in rows)
