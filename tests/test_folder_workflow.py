"""``kind: folder`` through Snakemake: a scratch copy of the workflow trains pixels + PCA on one
folder of SynthFaces photos and scores another folder's CSV pairs (``lfw_pairs``), with no
network and no other dataset; ``facerepro verify`` on the raw folder gives the same answer."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from folder_faces import write_faces, write_landmarks
from workflow_repo import ROOT, run, stdout

TARGET = "results/metrics/pca/pairs.json"


def _folder(path: Path, names: list[str], per_person: int, copies: dict[str, str]) -> None:
    """Faces, byte-copies ({new: original}) and the landmarks file of them all."""
    points = write_faces(path, names, per_person)
    for new, original in copies.items():
        (path / new).write_bytes((path / original).read_bytes())
        points[new] = points[original]
    write_landmarks(path / "landmarks.txt", points)


def test_a_folder_is_evaluated_by_its_own_pairs(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Snakefile", "rules", "workflow", "profiles"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, repo / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, repo / name)
    _folder(tmp_path / "train", [f"T{i}" for i in range(6)], per_person=3, copies={})
    test = tmp_path / "test faces"
    _folder(test, ["Ann", "Ben", "Cal", "Dee"], per_person=3,
            copies={"Ann/Ann_0004.jpg": "Ann/Ann_0001.jpg"})
    (test / "pairs.csv").write_text("path_a,path_b,same,fold\n" + "".join(
        f"{a}/{a}_000{i}.{x},{b}/{b}_000{j}.{y},{s},{f}\n" for a, i, x, b, j, y, s, f in [
            ("Ann", 4, "jpg", "Ann", 2, "png", 1, 0), ("Ann", 1, "jpg", "Ben", 1, "jpg", 0, 0),
            ("Cal", 1, "jpg", "Cal", 3, "jpg", 1, 1), ("Cal", 2, "png", "Dee", 1, "jpg", 0, 1)]))
    config = {
        "device": "cpu", "align": {"scale": 0.5},
        "datasets": {
            "own": {"kind": "folder", "path": str(tmp_path / "train"), "split": "train",
                    "landmarks": "landmarks.txt"},
            "mine": {"kind": "folder", "path": str(test), "pairs": "pairs.csv",
                     "landmarks": str(test / "landmarks.txt")}},
        "runs": {"pca": {"method": "pixels_pca", "net": "pixels_pca", "train": "own/faces",
                         "embedding_dim": 8, "pca_images": 18}},
        "protocols": {"pairs": {"kind": "lfw_pairs", "dataset": "mine/faces"}}}
    (repo / "config").mkdir()
    (repo / "config/folder.yaml").write_text(yaml.safe_dump(config))
    log = run(repo, sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
              "config/folder.yaml", "--", TARGET)
    assert "fetch" not in log and "synth_mirror" not in log      # nothing downloaded

    manifest = pd.read_parquet(repo / "results/data/mine/faces/manifest.parquet")
    assert len(manifest) == 13 and (manifest["status"] == "kept").all()
    assert manifest.set_index("image_id").at["images/Ann/Ann_0004", "duplicate_of"] == \
        "images/Ann/Ann_0001"
    metrics = json.loads((repo / TARGET).read_text())
    assert metrics["scorers"]["cosine"]["n"] == {"pairs": 4, "folds": 2, "same": 2,
                                                "different": 2}
    assert metrics["provenance"]["pairs_file"].endswith("resources/raw/mine/faces/pairs.csv")
    # nothing to do while the folder is unchanged; a photo added to a person's folder is seen
    plan = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
            "config/folder.yaml", "-n", "--", TARGET]
    assert "Nothing to be done" in run(repo, *plan)

    # the one-off path cleans, aligns and embeds the raw folder itself: the workflow's numbers
    verify = [sys.executable, "-m", "facerepro.cli", "verify", str(test), str(test / "pairs.csv"),
              "--run", "pca", "--config", "config/folder.yaml", "--landmarks",
              str(test / "landmarks.txt"), "--work", str(tmp_path / "work")]
    one_off = json.loads(stdout(repo, *verify))
    workflow = metrics["scorers"]["cosine"]
    assert one_off["per_fold"] == workflow["per_fold"] and one_off["n"] == workflow["n"]
    assert one_off["images"] == {"found": 13, "kept": 13, "quarantined": 0}
    assert one_off["faces"]["counts"] == {"fallback": 0, "multi_face": 0, "dropped": 0}
    ours = np.load(tmp_path / "work/features.npz")
    theirs = np.load(repo / "results/features/pca/mine/faces/all.npz")
    assert (ours["image_id"] == theirs["image_id"]).all()
    np.testing.assert_array_equal(ours["features"], theirs["features"])

    (test / "Ben/Ben_0009.jpg").write_bytes((test / "Ben/Ben_0002.png").read_bytes())
    assert "rule extract:" in run(repo, *plan)
