"""Run one configured protocol on a features file and write its metrics with provenance."""

from __future__ import annotations

from pathlib import Path

from facerepro import features
from facerepro.atomic import write_json
from facerepro.data.download import sha256_of
from facerepro.data.protocols import read_pairs
from facerepro.evaluation.verification import verify_pairs


def run_protocol(protocol: dict, features_path: str | Path, dataset_root: str | Path,
                 dest: str | Path) -> dict:
    if protocol["kind"] != "lfw_pairs":
        raise ValueError(f"unknown protocol kind {protocol['kind']!r}")
    pairs_file = Path(dataset_root) / protocol["pairs_file"]
    pairs = read_pairs(pairs_file)
    feats, image_ids, _ = features.load(features_path)
    result = {"scorers": {}}
    for scorer in protocol["scorers"]:
        result["scorers"][scorer] = verify_pairs(feats, image_ids, pairs, scorer)
    result["provenance"] = {"features": str(features_path), "pairs_file": str(pairs_file),
                            "pairs_sha256": sha256_of(pairs_file),
                            "features_sha256": sha256_of(features_path)}
    write_json(dest, result)
    return result
