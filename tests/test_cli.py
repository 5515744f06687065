import json
from pathlib import Path

import numpy as np
import yaml

from facerepro.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_validate_reports_the_bad_key(tmp_path, capsys):
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    config["align"]["scael"] = 2
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["validate", str(path)]) == 2
    assert "align: Additional properties are not allowed ('scael'" in capsys.readouterr().err


def test_verify_a_features_file(tmp_path, capsys):
    # two folds; identity A's images are identical, B and C orthogonal: perfect separation
    ids = np.array(["lfw/A/A_0001", "lfw/A/A_0002", "lfw/B/B_0001", "lfw/C/C_0001"])
    feats = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    np.savez(tmp_path / "f.npz", features=feats, image_id=ids, identity=ids)
    (tmp_path / "pairs.txt").write_text(
        "2\t1\nA\t1\t2\nA\t1\tB\t1\nA\t2\t1\nB\t1\tC\t1\n")
    assert main(["verify", str(tmp_path / "f.npz"), str(tmp_path / "pairs.txt")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["per_fold"]["accuracy"] == [1.0, 1.0] and out["n"]["pairs"] == 4
