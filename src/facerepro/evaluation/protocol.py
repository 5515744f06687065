"""Run one configured protocol on a features file and write its metrics with provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facerepro import features
from facerepro.data.download import sha256_of
from facerepro.data.protocols import read_pairs
from facerepro.evaluation import metrics
from facerepro.evaluation.joint_bayesian import JointBayesian
from facerepro.evaluation.verification import SCORERS, Scorer, verify_pairs

# Joint Bayesian on the real-valued features, and on the binarised codes (DeepID2+ Table 4).
JB_SCORERS = {"joint_bayesian": lambda x: x, "joint_bayesian_binary": lambda x: x > 0}


def joint_bayesian_scorer(name: str, options: dict, train_path: str | Path) -> Scorer:
    """JB fitted on held-out identities' features (never the protocol's own identities)."""
    code = JB_SCORERS[name]
    x, _, identity = features.load(train_path)
    model = JointBayesian(**options).fit(code(x).astype(np.float64), identity)
    return lambda a, b: model.score_pairs(code(a), code(b))


def run_protocol(run: str, name: str, protocol: dict, features_path: str | Path,
                 dataset_root: str | Path, dest: str | Path,
                 jb_train_path: str | Path | None = None) -> dict:
    if protocol["kind"] != "lfw_pairs":
        raise ValueError(f"unknown protocol kind {protocol['kind']!r}")
    pairs_file = Path(dataset_root) / protocol["pairs_file"]
    pairs = read_pairs(pairs_file)
    feats, image_ids, _ = features.load(features_path)
    provenance = {"features": str(features_path), "features_sha256": sha256_of(features_path),
                  "pairs_file": str(pairs_file), "pairs_sha256": sha256_of(pairs_file)}
    scorers = {}
    for scorer in protocol["scorers"]:
        if scorer in JB_SCORERS:
            options = {k: v for k, v in protocol["joint_bayesian"].items() if k != "train"}
            score = joint_bayesian_scorer(scorer, options, jb_train_path)
            provenance["joint_bayesian_train"] = str(jb_train_path)
            provenance["joint_bayesian_train_sha256"] = sha256_of(jb_train_path)
        else:
            score = SCORERS[scorer]
        scorers[scorer] = verify_pairs(feats, image_ids, pairs, score, protocol["fars"])
    return metrics.write(dest, run, name, protocol["kind"], scorers, provenance)
