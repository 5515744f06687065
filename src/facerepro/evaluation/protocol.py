"""Run one configured protocol on a features file and write its metrics with provenance.

Kinds: ``lfw_pairs`` (k-fold verification, any scorer), ``lfw_identification`` (closed- and
open-set identification, Best-Rowden et al., on our seeded splits), ``clustering``
(agglomerative clustering of the test identities, FaceNet Sec. 5.7) and ``angular_fisher``
(SphereFace's angular Fisher score of the test features, Table 6). A protocol's ``template`` and
``degrade`` keys choose the features :class:`~facerepro.features.View` it reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facerepro import features
from facerepro.data.download import sha256_of
from facerepro.data.protocols import read_pairs
from facerepro.evaluation import metrics
from facerepro.evaluation.analysis import angular_fisher_terms, binarize, fisher_ratio
from facerepro.evaluation.clustering import clustering_scores
from facerepro.evaluation.identification import (
    closed_set_identification,
    closed_set_split,
    open_set_identification,
    open_set_split,
)
from facerepro.evaluation.joint_bayesian import JointBayesian
from facerepro.evaluation.verification import SCORERS, Scorer, verify_pairs


def protocol_view(protocol: dict) -> features.View:
    """The features view a protocol reads: all images, through its crop and degradation."""
    degrade = protocol.get("degrade", {})
    return features.View("all", protocol.get("template"), degrade.get("jpeg_quality"),
                         degrade.get("resolution"))


# Joint Bayesian on the real-valued features, and on the binarised codes (DeepID2+ Table 4).
JB_SCORERS = {"joint_bayesian": lambda x: x, "joint_bayesian_binary": binarize}


def joint_bayesian_scorer(name: str, options: dict, train_path: str | Path) -> Scorer:
    """JB fitted on held-out identities' features (never the protocol's own identities)."""
    code = JB_SCORERS[name]
    x, _, identity = features.load(train_path)
    model = JointBayesian(**options).fit(code(x).astype(np.float64), identity)
    return lambda a, b: model.score_pairs(code(a), code(b))


def verification(protocol: dict, feats: np.ndarray, image_ids: np.ndarray,
                 dataset_root: str | Path, jb_train_path: str | Path | None,
                 provenance: dict) -> dict[str, dict]:
    """k-fold verification over the dataset's pairs file, once per scorer."""
    pairs_file = Path(dataset_root) / protocol["pairs_file"]
    pairs = read_pairs(pairs_file)
    provenance.update(pairs_file=str(pairs_file), pairs_sha256=sha256_of(pairs_file))
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
    return scorers


def identification(protocol: dict, feats: np.ndarray, identity: np.ndarray) -> dict[str, dict]:
    """Closed-set rank-1 / CMC and open-set DIR at FAR on seeded splits (cosine)."""
    closed = closed_set_identification(
        feats, identity, closed_set_split(identity, **protocol["closed_set"],
                                          seed=protocol["seed"]), protocol["max_rank"])
    opened = open_set_identification(
        feats, identity, open_set_split(identity, **protocol["open_set"], seed=protocol["seed"]),
        protocol["fars"])
    values = {"rank1": closed["rank1"],
              "far_resolution": 1 / opened["impostor_probes"]}
    for row in opened["dir_at_far"]:
        values[f"dir@far={row['far']:g}"] = row["dir"]
        values[f"far@far={row['far']:g}"] = row["realised_far"]
    ranks = list(range(1, len(closed["cmc"]) + 1))
    return {"cosine": {
        "values": values,
        "n": {"closed_gallery": closed["gallery"], "closed_probes": closed["probes"],
              "open_gallery": opened["gallery"], "genuine_probes": opened["genuine_probes"],
              "impostor_probes": opened["impostor_probes"]},
        "curves": {"cmc": {"x": ranks, "y": closed["cmc"]}},
        "notes": ["The published Best-Rowden et al. split files are not available: both splits "
                  f"are ours, drawn with seed {protocol['seed']} at the configured sizes."]}}


def _people_with(identity: np.ndarray, min_images: int) -> np.ndarray:
    """Rows of the identities that have at least ``min_images`` images."""
    names, inverse, counts = np.unique(identity, return_inverse=True, return_counts=True)
    rows = np.flatnonzero(counts[inverse] >= min_images)
    if len(np.unique(identity[rows])) < 2:
        raise ValueError(f"fewer than 2 identities have {min_images} images or more "
                         f"({len(names)} identities in all); lower min_images")
    return rows


def clustering(protocol: dict, feats: np.ndarray, identity: np.ndarray) -> dict[str, dict]:
    """Agglomerative clustering (cosine distance) of every image of the identities with at
    least ``min_images`` images, scored by pairwise F-measure and NMI."""
    rows = _people_with(identity, protocol["min_images"])
    threshold = protocol["distance_threshold"]
    scores = clustering_scores(feats[rows], identity[rows], distance_threshold=threshold,
                               linkage=protocol["linkage"])
    notes = [f"{protocol['linkage']} linkage on the cosine distance"]
    notes.append("stopped at the true number of identities (an oracle count)" if threshold is None
                 else f"stopped at cosine distance {threshold:g}")
    n_clusters, n_identities = scores.pop("n_clusters"), scores.pop("n_identities")
    return {"cosine": {"values": scores,
                       "n": {"images": len(rows), "identities": int(n_identities),
                             "clusters": int(n_clusters)},
                       "notes": notes}}


def angular_fisher(protocol: dict, feats: np.ndarray, identity: np.ndarray) -> dict[str, dict]:
    """AFS = S_w / S_b over the identities with at least ``min_images`` images."""
    rows = _people_with(identity, protocol["min_images"])
    s_w, s_b = angular_fisher_terms(feats[rows], identity[rows])
    return {"angular": {"values": {"afs": fisher_ratio(s_w, s_b), "s_w": s_w, "s_b": s_b},
                        "n": {"images": len(rows),
                              "identities": len(np.unique(identity[rows]))}}}


def run_protocol(run: str, name: str, protocol: dict, features_path: str | Path,
                 dataset_root: str | Path, dest: str | Path,
                 jb_train_path: str | Path | None = None) -> dict:
    """Evaluate one run's features on one configured protocol; write the metrics file."""
    feats, image_ids, identity = features.load(features_path)
    provenance = {"features": str(features_path), "features_sha256": sha256_of(features_path)}
    if protocol["kind"] == "lfw_pairs":
        scorers = verification(protocol, feats, image_ids, dataset_root, jb_train_path,
                               provenance)
    elif protocol["kind"] == "lfw_identification":
        scorers = identification(protocol, feats, identity)
    elif protocol["kind"] == "clustering":
        scorers = clustering(protocol, feats, identity)
    elif protocol["kind"] == "angular_fisher":
        scorers = angular_fisher(protocol, feats, identity)
    else:
        raise ValueError(f"unknown protocol kind {protocol['kind']!r}")
    return metrics.write(dest, run, name, protocol["kind"], scorers, provenance)
