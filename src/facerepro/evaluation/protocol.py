"""Run one configured protocol on a features file and write its metrics with provenance.

Each protocol kind is a function of one :class:`~facerepro.evaluation.context.ProtocolContext`
in the :data:`~facerepro.evaluation.context.KINDS` registry. The generic kinds are here:
``lfw_pairs`` (k-fold verification, any scorer), ``ytf_videos`` (k-fold verification of YouTube
Faces video pairs by set-to-set similarity), ``lfw_identification`` (closed- and open-set
identification, Best-Rowden et al., on our seeded splits), ``megaface`` (MegaFace challenge 1:
rank-1 against a distractor set and its curve, TAR at FAR), ``clustering`` (agglomerative
clustering of the test identities, FaceNet Sec. 5.7) and ``angular_fisher`` (SphereFace's
angular Fisher score of the test features, Table 6). The papers' own kinds live with what they
measure: for DeepID2+ ``occlusion`` (:mod:`.occlusion`), ``sparsity`` and ``selectiveness``
(:mod:`.neurons`); for Compact int32 ``compact_search`` and ``lut_attribute``
(:mod:`.compact_search`); for CLMLE ``attributes`` and ``imbalanced_classification``
(:mod:`.classification`). A protocol's ``template`` and ``degrade`` keys choose the features
:class:`~facerepro.views.View` it reads, its ``layer`` key the features layer.

An evaluate job imports what its own kind needs and no more: the papers' modules are imported
when their kind is looked up (:meth:`~facerepro.registries.Registry.register_module`), and
faiss, scikit-learn's clustering and Joint Bayesian's SciPy when a kind calls them. A features
file is read with numpy, so no kind imports torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from facerepro import features
from facerepro.data.download import sha256_of
from facerepro.data.protocols import video_frames
from facerepro.evaluation import metrics
from facerepro.evaluation.analysis import angular_fisher_terms, fisher_ratio
from facerepro.evaluation.context import KINDS, ProtocolContext
from facerepro.evaluation.identification import (
    closed_set_identification,
    closed_set_split,
    distractor_counts,
    megaface_identification,
    open_set_identification,
    open_set_split,
)
from facerepro.evaluation.verification import k_fold, set_scores, verify_pairs

# The papers' kinds, registered by their module when one of them is first looked up.
KINDS.register_module("facerepro.evaluation.occlusion", "occlusion")
KINDS.register_module("facerepro.evaluation.neurons", "sparsity", "selectiveness")
KINDS.register_module("facerepro.evaluation.compact_search", "compact_search", "lut_attribute")
KINDS.register_module("facerepro.evaluation.classification", "attributes",
                      "imbalanced_classification")


@KINDS.register("lfw_pairs")
def verification(ctx: ProtocolContext) -> dict[str, dict]:
    """k-fold verification over the dataset's pairs file, once per scorer."""
    layer = ctx.protocol.get("layer")
    feats, image_ids, _ = features.load(ctx.features_path, layer)
    pairs = ctx.pairs()
    out = {scorer: verify_pairs(feats, image_ids, pairs, ctx.scorer(scorer, layer),
                                ctx.protocol["fars"])
           for scorer in ctx.protocol["scorers"]}
    dropped = ctx.provenance["pairs_dropped"]
    if dropped:
        for entry in out.values():
            entry["n"]["pairs_dropped"] = dropped
            entry.setdefault("notes", []).append(
                f"{dropped} pairs name an image the face policy dropped (align.no_face / "
                f"multi_face: drop) and are left out: scored on {len(pairs)} pairs, not the "
                f"file's {len(pairs) + dropped}")
    return out


@KINDS.register("ytf_videos")
def video_verification(ctx: ProtocolContext) -> dict[str, dict]:
    """YouTube Faces: k-fold verification of the splits file's video pairs, each scored by
    the mean similarity over all pairs of the first ``frames`` frames of its two videos
    (:func:`~facerepro.evaluation.verification.set_scores`; FaceNet Sec. 5.7: the first 100),
    once per scorer (cosine, or minus the squared L2 distance)."""
    layer, frames = ctx.protocol.get("layer"), ctx.protocol["frames"]
    feats, image_ids, _ = features.load(ctx.features_path, layer)
    pairs = ctx.video_pairs()
    video, frame = video_frames(image_ids)
    videos = np.unique(np.concatenate([pairs["video1"], pairs["video2"]]))
    used = np.minimum(pd.Series(video).value_counts().reindex(videos).fillna(0), frames)
    out = {}
    for scorer in ctx.protocol["scorers"]:
        scores = set_scores(feats, video, frame, pairs["video1"].to_numpy(),
                            pairs["video2"].to_numpy(), frames, scorer)
        entry = k_fold(scores, pairs["same"].to_numpy(), pairs["fold"].to_numpy(),
                       ctx.protocol["fars"])
        entry["n"].update(videos=len(videos), fewest_frames=int(used.min()),
                          most_frames=int(used.max()))
        entry["notes"] = [f"set-to-set score: the mean {scorer} similarity over all pairs of "
                          f"the first {frames} frames of the two videos"]
        out[scorer] = entry
    return out


def _test_features(ctx: ProtocolContext) -> tuple[np.ndarray, np.ndarray]:
    """The features of the protocol's layer and the identity of each row, one row per
    distinct photo."""
    feats, _, identity = ctx.set_features(ctx.protocol.get("layer"))
    return feats, identity


@KINDS.register("lfw_identification")
def identification(ctx: ProtocolContext) -> dict[str, dict]:
    """Closed-set rank-1 / CMC and open-set DIR at FAR on seeded splits (cosine)."""
    protocol = ctx.protocol
    feats, identity = _test_features(ctx)
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


@KINDS.register("megaface")
def megaface(ctx: ProtocolContext) -> dict[str, dict]:
    """MegaFace challenge 1 on cosine: rank-1 of every ordered pair of a probe identity's images
    against the distractors, its curve over 10, 100, ... distractors, and TAR at each FAR
    (:func:`~facerepro.evaluation.identification.megaface_identification`).

    The distractors' features are the second features path; a seeded permutation orders them,
    so each point of the curve is a random subset of the next. A FAR the impostor pairs do not
    resolve (fewer than 1 / FAR of them) has a null TAR and a note; ``tar@min_far`` is TAR at
    the smallest FAR they resolve, ``min_far`` = 1 / pairs (one false accept).
    """
    protocol, layer = ctx.protocol, ctx.protocol.get("layer")
    probes, names, identity = ctx.set_features(layer)
    distractors_path = ctx.features_paths[1]
    distractors, _, _ = features.load(distractors_path, layer)
    ctx.provenance.update(distractors=str(distractors_path),
                          distractors_sha256=sha256_of(distractors_path))
    order = np.random.default_rng(protocol["seed"]).permutation(len(distractors))
    result = megaface_identification(probes, identity, distractors[order], protocol["fars"],
                                     distractor_counts(len(distractors)))
    n = result["impostor_pairs"]
    first, second = (names[rows].astype(str) for rows in result["pairs"])
    pair_ids = [f"{a}|{b}" for a, b in zip(first, second, strict=True)]
    ordered_ids = pair_ids + [f"{b}|{a}" for a, b in zip(first, second, strict=True)]
    values = {"rank1": result["rank1"], "far_resolution": 1 / n}
    items = {"rank1": metrics.items(ordered_ids, result["rank1_hits"])}
    notes = [f"Rank-1 against {result['distractors']:,} distractors (MegaFace: 1,000,000) "
             f"over {result['rank1_pairs']:,} ordered probe pairs of "
             f"{result['probe_identities']} people; {n:,} impostor pairs."]
    rows = [(f"far={row['far']:g}", row) for row in result["verification"]]
    if result["smallest_far"] is not None:
        rows.append(("min_far", result["smallest_far"]))
        values["min_far"] = result["smallest_far"]["far"]
    for key, row in rows:
        if not row["resolved"]:
            values[f"tar@{key}"] = None
            notes.append(f"TAR at FAR {row['far']:g} needs at least "
                         f"{math.ceil(1 / row['far']):,} impostor pairs, there are {n:,}: "
                         f"tar@min_far is TAR at the smallest FAR they resolve, 1/{n:,}.")
            continue
        values[f"tar@{key}"] = row["tar"]
        values[f"far@{key}"] = row["realised_far"]
        items[f"tar@{key}"] = metrics.items(pair_ids, row["accepted"])
    return {"cosine": {
        "values": values, "items": items, "notes": notes,
        "n": {"probes": result["probes"], "probe_identities": result["probe_identities"],
              "distractors": result["distractors"], "rank1_pairs": result["rank1_pairs"],
              "genuine_pairs": result["genuine_pairs"], "impostor_pairs": n},
        "curves": {"rank1_vs_distractors": {"x": result["curve"]["distractors"],
                                            "y": result["curve"]["rank1"]}}}}


def _people_with(identity: np.ndarray, min_images: int) -> np.ndarray:
    """Rows of the identities that have at least ``min_images`` images."""
    names, inverse, counts = np.unique(identity, return_inverse=True, return_counts=True)
    rows = np.flatnonzero(counts[inverse] >= min_images)
    if len(np.unique(identity[rows])) < 2:
        raise ValueError(f"fewer than 2 identities have {min_images} images or more "
                         f"({len(names)} identities in all); lower min_images")
    return rows


@KINDS.register("clustering")
def clustering(ctx: ProtocolContext) -> dict[str, dict]:
    """Agglomerative clustering (cosine distance) of every image of the identities with at
    least ``min_images`` images, scored by pairwise F-measure and NMI."""
    from facerepro.evaluation.clustering import clustering_scores  # scikit-learn

    protocol = ctx.protocol
    feats, identity = _test_features(ctx)
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


@KINDS.register("angular_fisher")
def angular_fisher(ctx: ProtocolContext) -> dict[str, dict]:
    """AFS = S_w / S_b over the identities with at least ``min_images`` images."""
    feats, identity = _test_features(ctx)
    rows = _people_with(identity, ctx.protocol["min_images"])
    s_w, s_b = angular_fisher_terms(feats[rows], identity[rows])
    return {"angular": {"values": {"afs": fisher_ratio(s_w, s_b), "s_w": s_w, "s_b": s_b},
                        "n": {"images": len(rows),
                              "identities": len(np.unique(identity[rows]))}}}


def run_protocol(run: str, name: str, protocol: dict, features_paths: Sequence[str | Path],
                 dataset_root: str | Path, dest: str | Path, run_config: dict,
                 jb_train_path: str | Path | None = None,
                 train_path: str | Path | None = None,
                 train_root: str | Path | None = None,
                 faces_path: str | Path | None = None,
                 manifest_path: str | Path | None = None) -> dict:
    """Evaluate one run on one configured protocol and write the metrics file.

    The arguments are those of :class:`~facerepro.evaluation.context.ProtocolContext`;
    ``faces_path`` is the face policy's summary of the protocol's dataset
    (:mod:`facerepro.align.face_policy`): its counts of fallbacks, multi-face choices and
    drops go to the provenance as ``faces``, its dropped ids to the context; ``manifest_path``
    is the dataset's manifest (its byte-duplicates).
    """
    kind = KINDS[protocol["kind"]]
    main = features_paths[0]
    provenance = {"features": str(main), "features_sha256": sha256_of(main)}
    dropped: frozenset[str] = frozenset()
    if faces_path is not None:
        # read as JSON: the policy's module imports OpenCV, which no evaluate job needs
        faces = json.loads(Path(faces_path).read_text())
        dropped = frozenset(faces["ids"]["dropped"])
        provenance["faces"] = {"dataset": protocol["dataset"],
                               **{k: v for k, v in faces.items() if k != "ids"}}
    ctx = ProtocolContext(protocol, features_paths, dataset_root, run_config, jb_train_path,
                          train_path, train_root, provenance=provenance, dropped=dropped,
                          manifest_path=manifest_path)
    return metrics.write(dest, run, name, protocol["kind"], kind(ctx), ctx.provenance)
