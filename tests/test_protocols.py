from pathlib import Path

import pandas as pd
import pytest

from facerepro.data import synth
from facerepro.data.protocols import (
    HOLDOUT,
    hold_out_identities,
    lfw_image_name,
    read_celeba_attributes,
    read_celeba_identities,
    read_celeba_partition,
    read_pairs,
    read_ytf_splits,
)

REAL_PAIRS = Path(__file__).parent / "data" / "lfw" / "pairs.txt"


def test_real_lfw_pairs_parse():
    pairs = read_pairs(REAL_PAIRS)
    assert len(pairs) == 6000
    assert pairs["fold"].nunique() == 10
    assert pairs["same"].sum() == 3000
    assert (pairs.groupby("fold")["same"].sum() == 300).all()
    assert (pairs.groupby("fold").size() == 600).all()
    first = pairs.iloc[0]
    assert (first["name1"], first["num1"], first["num2"]) == ("Abel_Pacheco", 1, 4)
    assert first["image1"] == "Abel_Pacheco/Abel_Pacheco_0001"
    # in file order: the first 300 of each fold are same-person pairs
    assert pairs.iloc[:300]["same"].all() and not pairs.iloc[300:600]["same"].any()


def test_image_name_is_zero_padded():
    assert lfw_image_name("A_B", 12) == "A_B/A_B_0012"


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


def test_view1_pairs_file_is_one_fold(tmp_path):
    dev = tmp_path / "pairsDevTrain.txt"
    dev.write_text("2\nA\t1\t2\nB\t1\t3\nA\t1\tC\t2\nB\t2\tD\t1\n")
    pairs = read_pairs(dev)
    assert pairs["fold"].tolist() == [0, 0, 0, 0]
    assert pairs["same"].tolist() == [True, True, False, False]
    assert pairs.iloc[3][["image1", "image2"]].tolist() == ["B/B_0002", "D/D_0001"]


def test_celeba_partition_identities_and_attributes(tmp_path):
    (tmp_path / "p.txt").write_text("000001.jpg 0\n000002.jpg 2\n000003.jpg 1\n")
    part = read_celeba_partition(tmp_path / "p.txt")
    assert part.to_dict("list") == {"image": ["000001.jpg", "000002.jpg", "000003.jpg"],
                                    "partition": [0, 2, 1], "split": ["train", "test", "val"]}
    (tmp_path / "i.txt").write_text("000001.jpg 2880\n000002.jpg 17\n")
    assert read_celeba_identities(tmp_path / "i.txt")["identity"].tolist() == ["2880", "17"]
    (tmp_path / "a.txt").write_text("2\nBald Male Young\n000001.jpg -1  1  1\n"
                                    "000002.jpg  1 -1 -1\n")
    attrs = read_celeba_attributes(tmp_path / "a.txt")
    assert attrs.columns.tolist() == ["image", "Bald", "Male", "Young"]
    assert attrs["Male"].tolist() == [True, False] and attrs["Bald"].dtype == bool
    (tmp_path / "bad.txt").write_text("2\nBald Male\n000001.jpg -1 1\n000002.jpg 1\n")
    with pytest.raises(ValueError, match="line 4 has 1 values for 2 attributes"):
        read_celeba_attributes(tmp_path / "bad.txt")
    (tmp_path / "p2.txt").write_text("000001.jpg 3\n")
    with pytest.raises(ValueError, match="0, 1 or 2"):
        read_celeba_partition(tmp_path / "p2.txt")


def test_celeba_readers_read_synthfaces_files(tmp_path):
    cfg = synth.SynthConfig.from_dict({"celeba": {"identities": 4, "images": 12}})
    synth.write_part("celeba", tmp_path, cfg)
    part = read_celeba_partition(tmp_path / "list_eval_partition.txt")
    attrs = read_celeba_attributes(tmp_path / "list_attr_celeba.txt")
    ids = read_celeba_identities(tmp_path / "identity_CelebA.txt")
    assert len(part) == len(attrs) == len(ids) == 12
    assert attrs.columns[1:].tolist() == list(synth.ATTRIBUTES)
    assert set(part["split"]) == {"train", "val", "test"}


YTF_SPLITS = """split number, first name, second name, is same, is same (redundant)
1, Aaron_Eckhart/0, Aaron_Eckhart/1, 1, 1
1, Aaron_Eckhart/0, Zico/2, 0, 0
2, Abel_Pacheco/1, Abel_Pacheco/4, 1, 1
2, Abel_Pacheco/1, Ai_Sugiyama/0, 0, 0
"""


def test_ytf_splits_parse_in_file_order(tmp_path):
    path = tmp_path / "splits.txt"
    path.write_text(YTF_SPLITS)
    splits = read_ytf_splits(path)
    assert splits.columns.tolist() == ["fold", "video1", "video2", "name1", "name2", "same"]
    assert splits["fold"].tolist() == [0, 0, 1, 1]
    assert splits["same"].tolist() == [True, False, True, False]
    assert splits.iloc[1].tolist() == [0, "Aaron_Eckhart/0", "Zico/2", "Aaron_Eckhart", "Zico",
                                       False]
    path.write_text(YTF_SPLITS.replace("Zico/2", "Zico"))
    with pytest.raises(ValueError, match="<Person>/<video>"):
        read_ytf_splits(path)
    path.write_text("split, first, second\n1, a/0, b/0\n")
    with pytest.raises(ValueError, match="header lacks"):
        read_ytf_splits(path)


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
