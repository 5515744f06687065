from pathlib import Path

import pandas as pd
import pytest

from facerepro.data.protocols import HOLDOUT, hold_out_identities, lfw_image_id, read_pairs

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


def _manifest():
    # people a..e with 3, 1, 2, 4, 2 kept images; c has one more, quarantined image
    ids = list("aaab") + list("cc") + list("dddd") + list("ee") + ["c"]
    status = ["kept"] * 12 + ["quarantined"]
    return pd.DataFrame({"image_id": [f"x{i}" for i in range(13)], "identity": ids,
                         "split": "train", "status": status})


def test_hold_out_marks_whole_eligible_identities():
    m = _manifest()
    out = hold_out_identities(m, identities=2, seed=0, min_images=2)
    held = set(out.loc[out["split"] == HOLDOUT, "identity"])
    assert len(held) == 2 and "b" not in held          # b has one image: never eligible
    for person in held:                                # every image of a held-out person
        assert (out.loc[out["identity"] == person, "split"] == HOLDOUT).all()
    assert len(out) == len(m) and (m["split"] == "train").all()     # input untouched
    assert held == set(hold_out_identities(m, 2, 0).query("split == @HOLDOUT")["identity"])
    picks = {frozenset(hold_out_identities(m, 2, s).query("split == @HOLDOUT")["identity"])
             for s in range(20)}
    assert len(picks) > 1                                # the seed matters
    # min_images counts kept images only: c has 2 kept, d 4
    only_d = hold_out_identities(m, 1, 0, min_images=3).query("split == @HOLDOUT")
    assert set(only_d["identity"]) <= {"a", "d"}


def test_hold_out_too_many_is_a_clear_error():
    with pytest.raises(ValueError, match="asks for 5 identities but only 4 have >= 2"):
        hold_out_identities(_manifest(), identities=5, seed=0)


def test_hold_out_never_moves_test_images():
    m = _manifest()
    m.loc[m["identity"] == "d", "split"] = ["train", "test", "train", "train"]
    for seed in range(10):
        out = hold_out_identities(m, identities=3, seed=seed)
        assert "d" not in set(out.loc[out["split"] == HOLDOUT, "identity"])
        assert (out["split"] == "test").sum() == 1
