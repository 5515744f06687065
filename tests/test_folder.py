"""A folder of one's own faces (``kind: folder``): copy, manifest, pairs, landmarks, config
checks and ``facerepro verify``'s errors, on SynthFaces faces written as JPEG and PNG."""

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from folder_faces import write_faces, write_landmarks

from facerepro import models
from facerepro.align import landmark_policy
from facerepro.align.landmarks import dataset_landmarks
from facerepro.align.transform import get_template
from facerepro.cli import main
from facerepro.config import ConfigError, validate
from facerepro.data import registry
from facerepro.data.clean import build_manifest
from facerepro.data.folder import FolderError, copy_folder
from facerepro.data.protocols import read_pairs, within_folder

ROOT = Path(__file__).resolve().parents[1]
PEOPLE = ["Alice_Smith", "Bob_Jones", "Chen_Wei"]


def _user_folder(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """An LFW-style folder with a byte-duplicate, a truncated photo, a stray top-level photo,
    a landmarks file and a CSV pairs file whose pairs name the duplicate's second copy."""
    folder = tmp_path / "my faces"
    landmarks = write_faces(folder, PEOPLE)
    first = (folder / "Alice_Smith/Alice_Smith_0001.jpg").read_bytes()
    (folder / "Alice_Smith/Alice_Smith_0004.jpg").write_bytes(first)       # same bytes
    (folder / "Bob_Jones/Bob_Jones_0004.jpg").write_bytes(first[: len(first) // 2])
    (folder / "stray.jpg").write_bytes(first)                               # no person folder
    (folder / ".DS_Store").write_bytes(b"\0\1")
    landmarks["Alice_Smith/Alice_Smith_0004.jpg"] = landmarks["Alice_Smith/Alice_Smith_0001.jpg"]
    write_landmarks(folder / "points.txt", landmarks)
    (folder / "pairs.csv").write_text(
        "path_a,path_b,same,fold\n"
        "Alice_Smith/Alice_Smith_0004.jpg,Alice_Smith/Alice_Smith_0002.png,1,0\n"
        "Alice_Smith/Alice_Smith_0001.jpg,Bob_Jones/Bob_Jones_0001.jpg,0,0\n"
        "Bob_Jones/Bob_Jones_0002.png,Bob_Jones/Bob_Jones_0003.jpg,1,1\n"
        "Chen_Wei/Chen_Wei_0001.jpg,Alice_Smith/Alice_Smith_0003.jpg,0,1\n")
    return folder, landmarks


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_folder_is_copied_with_every_sha256_and_cleaned_without_losing_a_file(tmp_path):
    folder, landmarks = _user_folder(tmp_path)
    part = tmp_path / "raw/mine/faces"
    record = copy_folder(folder, {"pairs.csv": "pairs.csv", "landmarks.txt": "points.txt"},
                         part, part / ".extracted.json")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".DS_Store")
    assert record["sha256"] == {p.relative_to(folder).as_posix(): _sha(p) for p in files}
    assert json.loads((part / ".extracted.json").read_text()) == record
    assert _sha(part / "pairs.csv") == _sha(folder / "pairs.csv")
    assert not (part / "images/.DS_Store").exists()

    manifest = build_manifest(part, "folder", "test").set_index("image_id")
    images = [p for p in files if p.suffix in (".jpg", ".png")]
    assert len(manifest) == len(images) == 3 * 3 + 3                    # counts in = out
    for p in images:
        row = manifest.loc[f"images/{p.relative_to(folder).with_suffix('').as_posix()}"]
        assert row["sha256"] == _sha(p)
    # an evaluation part keeps the second copy, marked; the broken and stray files are not kept
    dup = manifest.loc["images/Alice_Smith/Alice_Smith_0004"]
    assert (dup["status"], dup["duplicate_of"]) == ("kept", "images/Alice_Smith/Alice_Smith_0001")
    assert manifest.loc["images/Bob_Jones/Bob_Jones_0004", "reason"] == "truncated"
    assert manifest.loc["images/stray", "reason"] == "not_in_a_person_folder"
    assert (manifest["status"] == "kept").sum() == 10
    assert set(manifest.loc[manifest["status"] == "kept", "identity"]) == set(PEOPLE)
    # the same folder as a training part drops the copy
    train = build_manifest(part, "folder", "train").set_index("image_id")
    assert train.loc["images/Alice_Smith/Alice_Smith_0004", "reason"] == (
        "duplicate_of:images/Alice_Smith/Alice_Smith_0001")

    # every pair's images are kept images of the manifest, the second copy among them
    pairs = read_pairs(part / "pairs.csv")
    kept = set(within_folder(manifest.index[manifest["status"] == "kept"].to_numpy()))
    assert set(pairs["image1"]) | set(pairs["image2"]) <= kept
    assert pairs["image1"].iloc[0] == "Alice_Smith/Alice_Smith_0004"
    assert pairs["same"].tolist() == [True, False, True, False]
    assert pairs["fold"].tolist() == [0, 0, 1, 1]

    # the landmark file is read for the kept images, at the written images' coordinates
    kept_rows = manifest[manifest["status"] == "kept"]
    points = dataset_landmarks(part, "folder", kept_rows["path"])
    for p, got in zip(kept_rows["path"], points, strict=True):
        np.testing.assert_allclose(got, landmarks[p.removeprefix("images/")], atol=1e-3)
    # a photo the landmarks file lacks: its line, as the file writes it, is the fix
    (part / "landmarks.txt").write_text("".join(
        line + "\n" for line in (part / "landmarks.txt").read_text().splitlines()
        if not line.startswith("Chen_Wei/Chen_Wei_0002")))
    with pytest.raises(KeyError, match=r"no landmarks for images/Chen_Wei/Chen_Wei_0002.png: add "
                                       r"its line \(Chen_Wei/Chen_Wei_0002.png x1 y1"):
        dataset_landmarks(part, "folder", kept_rows["path"])


def test_an_archive_in_casia_layout_with_lfw_pairs(tmp_path):
    ids = ["0000101", "0000102", "0000103"]
    staging = tmp_path / "staging/faces"          # zipped with its folder, as `zip -r` does
    write_faces(staging, ids, per_person=2)
    (staging / "pairs.txt").write_text(
        "2\t1\n0000101\t1\t2\n0000101\t1\t0000102\t2\n0000103\t1\t2\n0000102\t1\t0000103\t2\n")
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(staging.rglob("*")):
            zf.write(p, p.relative_to(staging.parent).as_posix())
    part = tmp_path / "raw/mine/faces"
    record = copy_folder(archive, {"pairs.txt": "pairs.txt"}, part, part / ".extracted.json")
    assert record["sha256"] == {"faces.zip": _sha(archive)}
    manifest = build_manifest(part, "folder_ids", "test")
    assert len(manifest) == 6 and (manifest["status"] == "kept").all()
    assert sorted(manifest["identity"].unique()) == ids
    pairs = read_pairs(part / "pairs.txt")
    assert set(pairs["image1"]) | set(pairs["image2"]) <= set(within_folder(
        manifest["image_id"].to_numpy()))
    assert pairs.loc[1, ["image1", "image2"]].tolist() == ["0000101/0000101_0001",
                                                           "0000102/0000102_0002"]


def test_copy_is_redone_only_when_the_folder_changes_and_names_a_missing_file(tmp_path):
    folder = tmp_path / "faces"
    write_faces(folder, PEOPLE[:2], per_person=2)
    part, marker = tmp_path / "part", tmp_path / "part/.extracted.json"
    copy_folder(folder, {}, part, marker)
    stamp = marker.stat().st_mtime_ns
    copy_folder(folder, {}, part, marker)
    assert marker.stat().st_mtime_ns == stamp
    (folder / "Bob_Jones/Bob_Jones_0002.png").unlink()
    copy_folder(folder, {}, part, marker)
    assert not (part / "images/Bob_Jones/Bob_Jones_0002.png").exists()
    with pytest.raises(FolderError, match="'pairs.csv' inside .* is missing"):
        copy_folder(folder, {"pairs.csv": "pairs.csv"}, part, marker)
    assert (part / "images/Alice_Smith").is_dir()      # the failed copy left the part as it was
    with pytest.raises(FolderError, match="no such folder or archive"):
        copy_folder(tmp_path / "nowhere", {}, part, marker)


def _config(folder: Path, **source) -> dict:
    return {"datasets": {"mine": {"kind": "folder", "path": str(folder), **source},
                         "own": {"kind": "folder", "path": str(folder), "split": "train"}},
            "runs": {"pca": {"method": "pixels_pca", "net": "pixels_pca", "train": "own/faces"}},
            "protocols": {"verification": {"kind": "lfw_pairs", "dataset": "mine/faces"}}}


def test_folder_config_gets_its_own_pairs_and_refuses_pairs_it_lacks(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    config = validate(_config(folder, pairs="pairs.csv"))
    assert config["protocols"]["verification"]["pairs_file"] == "pairs.csv"
    assert config["datasets"]["mine"]["layout"] == "lfw"
    assert registry.part_spec(config["datasets"]["mine"], "faces").split == "test"
    with pytest.raises(ConfigError, match=r"protocols.verification \(lfw_pairs\) needs pairs, "
                                          r"but dataset mine/faces has no pairs file: give "
                                          r"datasets.mine.pairs"):
        validate(_config(folder))
    with pytest.raises(ConfigError, match="datasets.mine.path = .*no such folder or archive"):
        validate(_config(tmp_path / "nowhere", pairs="pairs.csv"))
    with pytest.raises(ConfigError, match="Additional properties are not allowed"):
        validate(_config(folder, checksums={"a.zip": "a" * 64}))
    config = _config(folder, pairs="pairs.csv")
    config["runs"]["pca"]["train"] = "mine/faces"
    with pytest.raises(ConfigError, match="runs.pca.train = 'mine/faces' is an evaluation set "
                                          r"\(split test\).*set datasets.mine.split: train"):
        validate(config)


def test_lfw_pairs_on_a_part_without_pairs_fails_at_validate(tmp_path, capsys):
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    config["protocols"]["casia_pairs"] = {"kind": "lfw_pairs", "dataset": "synth/casia"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "protocols.casia_pairs (lfw_pairs) needs pairs, but dataset synth/casia has no " \
           "pairs file" in err and "Traceback" not in err


def test_validate_refuses_a_pin_that_contradicts_the_registry(tmp_path, capsys):
    lfw = registry.LFW.files["lfw.tgz"].sha256
    wrong = "b" * 64
    config = {"datasets": {"lfw": {"kind": "lfw", "checksums": {"lfw.tgz": wrong}},
                           "casia": {"kind": "casia_webface"}},
              "runs": {"pca": {"method": "pixels_pca", "net": "pixels_pca",
                               "train": "casia/casia"}},
              "protocols": {"v": {"kind": "lfw_pairs", "dataset": "lfw/lfw"}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"datasets.lfw.checksums.lfw.tgz = {wrong} contradicts the published sha256 {lfw}" \
        in err and "remove the pin" in err
    config["datasets"]["lfw"]["checksums"] = {"lfw.zip": wrong}
    path.write_text(yaml.safe_dump(config))
    assert main(["validate", str(path)]) == 2
    assert "names 'lfw.zip', which is not a file of dataset kind 'lfw'" in capsys.readouterr().err
    config["datasets"]["lfw"]["checksums"] = {"lfw.tgz": lfw}       # the published one: fine
    path.write_text(yaml.safe_dump(config))
    assert main(["validate", str(path)]) == 0


def test_verify_scores_two_images_and_explains_a_missing_or_quarantined_one(tmp_path, capsys):
    folder, _ = _user_folder(tmp_path)
    part = tmp_path / "raw/mine/faces"
    copy_folder(folder, {"pairs.csv": "pairs.csv"}, part, part / ".extracted.json")
    manifest = build_manifest(part, "folder", "test")
    manifest.to_parquet(tmp_path / "manifest.parquet")
    kept = manifest[manifest["status"] == "kept"]
    feats = np.random.default_rng(0).normal(size=(len(kept), 4)).astype(np.float32)
    np.savez(tmp_path / "f.npz", features=feats, image_id=kept["image_id"].to_numpy(str),
             identity=kept["identity"].to_numpy(str))
    ids = list(kept["image_id"])

    a, b = "Alice_Smith/Alice_Smith_0004.jpg", "Chen_Wei/Chen_Wei_0002.png"
    assert main(["verify", str(tmp_path / "f.npz"), a, b]) == 0
    x = feats[ids.index("images/Alice_Smith/Alice_Smith_0004")]
    y = feats[ids.index("images/Chen_Wei/Chen_Wei_0002")]
    expected = x @ y / np.linalg.norm(x) / np.linalg.norm(y)
    assert json.loads(capsys.readouterr().out)["score"] == pytest.approx(expected, rel=1e-5)

    bad = tmp_path / "bad.csv"
    bad.write_text("path_a,path_b,same,fold\n"
                   "Bob_Jones/Bob_Jones_0004.jpg,Bob_Jones/Bob_Jones_0001.jpg,1,0\n"
                   "Alice_Smith/Alice_Smith_0009.jpg,Chen_Wei/Chen_Wei_0001.jpg,0,0\n"
                   "Chen_Wei/Chen_Wei_0001.jpg,Chen_Wei/Chen_Wei_0002.png,1,1\n"
                   "Chen_Wei/Chen_Wei_0001.jpg,Bob_Jones/Bob_Jones_0001.jpg,0,1\n")
    assert main(["verify", str(tmp_path / "f.npz"), str(bad),
                 "--manifest", str(tmp_path / "manifest.parquet")]) == 2
    err = capsys.readouterr().err
    assert "Bob_Jones/Bob_Jones_0004: quarantined (truncated)" in err
    assert "Alice_Smith/Alice_Smith_0009: not in the dataset" in err
    assert "Traceback" not in err
    assert main(["verify", str(tmp_path / "f.npz"), str(bad)]) == 2
    assert "2 images named by the pairs have no features" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "missing.npz"), str(bad)]) == 2
    assert "missing.npz" in capsys.readouterr().err


def test_csv_pairs_errors_name_the_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("a,b,same\nx/1.jpg,y/1.jpg,1\n")
    with pytest.raises(ValueError, match="header path_a,path_b,same"):
        read_pairs(path)
    path.write_text("path_a,path_b,same\nx/1.jpg,y/1.jpg,maybe\n")
    with pytest.raises(ValueError, match="line 2: same must be 1 or 0"):
        read_pairs(path)
    path.write_text("path_a,path_b,same\nx/1.jpg,/etc/passwd,1\n")
    with pytest.raises(ValueError, match="line 2: path_b '/etc/passwd' must be an image path"):
        read_pairs(path)
    # without a fold column, pair i is in fold i mod 10; every fold needs both kinds of pair
    rows = "".join(f"a/{i}.jpg,b/{i}.jpg,{int(i < 10)}\n" for i in range(20))
    path.write_text("path_a,path_b,same\n" + rows)
    pairs = read_pairs(path)
    assert pairs["fold"].tolist() == [i % 10 for i in range(20)]
    path.write_text("path_a,path_b,same\n" + rows.replace(",0\n", ",1\n", 1))
    with pytest.raises(ValueError, match=r"fold\(s\) \[0\] hold only same or only different"):
        read_pairs(path)


def test_a_folder_is_aligned_from_its_landmarks_file_or_by_mtcnn(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    with_file = validate(_config(folder, pairs="pairs.csv", landmarks="points.txt"))
    without = validate(_config(folder, pairs="pairs.csv"))
    assert landmark_policy.source_for(with_file, "mine/faces") == "dataset"
    assert landmark_policy.source_for(without, "mine/faces") == "mtcnn"
    without["align"]["landmarks"] = "dataset"
    with pytest.raises(ValueError, match=r"name the folder's landmarks file "
                                         r"\(datasets.<source>.landmarks\)"):
        landmark_policy.source_for(without, "mine/faces")


def test_verify_a_raw_folder_embeds_it_and_names_what_is_missing(tmp_path, monkeypatch, capsys):
    folder, _ = _user_folder(tmp_path)
    config = _config(folder, pairs="pairs.csv")
    config["runs"]["net"] = {"method": "softmax", "net": "sphere4", "train": "own/faces",
                             "embedding_dim": 16}
    config["align"] = {"scale": 0.5}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    args = ["verify", str(folder), "--config", "c.yaml", "--threads", "1"]
    pair = ["Alice_Smith/Alice_Smith_0004.jpg", "Alice_Smith/Alice_Smith_0001.jpg"]

    assert main(["verify", str(folder), *pair]) == 2
    assert "needs --run" in capsys.readouterr().err
    assert main(["verify", "nowhere", *pair, "--run", "net", "--config", "c.yaml"]) == 2
    assert "nowhere: no such folder or archive" in capsys.readouterr().err
    assert main([*args, *pair, "--run", "net"]) == 2
    assert "results/models/net/model.pt is missing: train the run first" in \
        capsys.readouterr().err

    run = validate(config)["runs"]["net"]
    template = get_template(run["template"], scale=0.5)
    size = (template.height, template.width)
    models.save(models.build("sphere4", size, 16), "sphere4", size,
                "results/models/net/model.pt")
    assert main([*args, *pair, "--run", "net"]) == 2       # no landmarks file: MTCNN's weights
    assert "resources/models/mtcnn/pnet.pt is missing; run the mtcnn_weights rule" in \
        capsys.readouterr().err

    landmarks = ["--run", "net", "--landmarks", str(folder / "points.txt")]
    assert main([*args, *pair, *landmarks]) == 0
    same_bytes = json.loads(capsys.readouterr().out)
    assert same_bytes["score"] == pytest.approx(1.0, abs=1e-6)
    assert same_bytes["images"] == {"found": 12, "kept": 10, "quarantined": 2}
    assert same_bytes["faces"]["counts"] == {"fallback": 0, "multi_face": 0, "dropped": 0}
    other = ["Alice_Smith/Alice_Smith_0001.jpg", "Bob_Jones/Bob_Jones_0001.jpg"]
    assert main([*args, *other, *landmarks]) == 0
    assert json.loads(capsys.readouterr().out)["score"] < 0.999
    assert main([*args, str(folder / "pairs.csv"), *landmarks]) == 0
    assert json.loads(capsys.readouterr().out)["n"]["pairs"] == 4

    truncated = ["Bob_Jones/Bob_Jones_0004.jpg", "Bob_Jones/Bob_Jones_0001.jpg"]
    assert main([*args, *truncated, *landmarks]) == 2
    err = capsys.readouterr().err
    assert "Bob_Jones/Bob_Jones_0004: quarantined (truncated)" in err and "Traceback" not in err
