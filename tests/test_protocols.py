from pathlib import Path

import pytest

from facerepro.data.protocols import lfw_image_id, read_pairs

REAL_PAIRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw" / "pairs.txt"


def test_real_lfw_pairs_parse():
    pairs = read_pairs(REAL_PAIRS)
    assert len(pairs) == 6000
    assert pairs["fold"].nunique() == 10
    assert pairs["same"].sum() == 3000
    assert (pairs.groupby("fold")["same"].sum() == 300).all()
    first = pairs.iloc[0]
    assert (first["name1"], first["num1"], first["num2"]) == ("Abel_Pacheco", 1, 4)
    assert first["id1"] == "lfw/Abel_Pacheco/Abel_Pacheco_0001"
    # in file order: the first 300 of each fold are same-person pairs
    assert pairs.iloc[:300]["same"].all() and not pairs.iloc[300:600]["same"].any()


def test_image_id_is_zero_padded():
    assert lfw_image_id("A_B", 12) == "lfw/A_B/A_B_0012"


def test_truncated_pairs_file_is_rejected(tmp_path):
    bad = tmp_path / "pairs.txt"
    bad.write_text("2\t1\nA\t1\t2\nB\t1\tC\t1\nD\t1\t2\n")
    with pytest.raises(ValueError, match="3 pair lines, header promises 4"):
        read_pairs(bad)


def test_misplaced_pair_kind_is_rejected(tmp_path):
    bad = tmp_path / "pairs.txt"
    bad.write_text("1\t1\nB\t1\tC\t1\nA\t1\t2\n")
    with pytest.raises(ValueError, match="line 2"):
        read_pairs(bad)
