"""What a protocol kind reads, and the registry of kinds by config name.

A kind is a function ``kind(ctx: ProtocolContext) -> dict[str, dict]`` filed in :data:`KINDS`
under its config name (``@KINDS.register("occlusion")``); it returns the scorer entries of the
metrics file (:mod:`facerepro.evaluation.metrics`) and records the inputs it read beyond the
features in ``ctx.provenance``. The generic kinds live in :mod:`facerepro.evaluation.protocol`,
the paper-specific ones in the module of what they measure. This module stands apart from
``protocol``, which imports those modules so that their kinds are registered: they import this
one, so the imports run one way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from facerepro import features
from facerepro.data.download import sha256_of
from facerepro.data.protocols import read_pairs, read_ytf_splits, within_folder
from facerepro.evaluation.analysis import binarize
from facerepro.evaluation.verification import SCORERS, Scorer
from facerepro.registries import Registry

# Joint Bayesian on the real-valued features, and on the binarised codes (DeepID2+ Table 4).
JB_SCORERS = {"joint_bayesian": lambda x: x, "joint_bayesian_binary": binarize}


def joint_bayesian_scorer(name: str, options: dict, train_path: str | Path,
                          layer: str | None = None) -> Scorer:
    """JB fitted on held-out identities' features (never the protocol's own identities)."""
    from facerepro.evaluation.joint_bayesian import JointBayesian  # SciPy, scikit-learn

    code = JB_SCORERS[name]
    x, _, identity = features.load(train_path, layer)
    model = JointBayesian(**options).fit(code(x).astype(np.float64), identity)
    return lambda a, b: model.score_pairs(code(a), code(b))


@dataclass(frozen=True)
class ProtocolContext:
    """One run evaluated on one configured protocol.

    ``features_paths`` are the features views of
    :func:`facerepro.views.protocol_views` of the protocol, in order (``megaface``: then its
    distractors' view); ``run_config`` the run's
    config entry; ``jb_train_path`` the held-out features Joint Bayesian learns from;
    ``train_path`` and ``train_root`` the training faces' features and dataset of a look-up
    table; ``provenance`` the metrics file's record of what was read; ``dropped`` the image ids
    of the protocol's dataset that the face policy left unaligned
    (:mod:`facerepro.align.face_policy`), which no features file holds; ``manifest_path`` the
    dataset's manifest, whose ``duplicate_of`` marks the second copies of byte-identical photos
    (an evaluation part keeps them addressable for its pairs, :mod:`facerepro.data.clean`).
    """

    protocol: dict
    features_paths: Sequence[str | Path]
    dataset_root: str | Path
    run_config: dict
    jb_train_path: str | Path | None = None
    train_path: str | Path | None = None
    train_root: str | Path | None = None
    provenance: dict = field(default_factory=dict)
    dropped: frozenset[str] = frozenset()
    manifest_path: str | Path | None = None

    @property
    def features_path(self) -> str | Path:
        """The features of the protocol's own view."""
        return self.features_paths[0]

    def set_features(self, layer: str | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features, image_id, identity) of the protocol's view for a kind that scores a set
        of faces (a gallery, clusters, a retrieval database), without the second copies of
        byte-identical photos: there a copy would count as one more photo of its person and
        match its original for free. The provenance records how many as
        ``duplicates_left_out``. The manifest is read here, not by every kind: parquet costs a
        pair-scoring job its import."""
        feats, image_ids, identity = features.load(self.features_path, layer)
        copies: list[str] = []
        if self.manifest_path is not None:
            manifest = pd.read_parquet(self.manifest_path,
                                       columns=["image_id", "status", "duplicate_of"])
            marked = (manifest["status"] == "kept") & (manifest["duplicate_of"] != "")
            copies = manifest.loc[marked, "image_id"].tolist()
        copy = np.isin(image_ids, np.array(copies, dtype=str))
        self.provenance["duplicates_left_out"] = int(copy.sum())
        return feats[~copy], image_ids[~copy], identity[~copy]

    @property
    def bits(self) -> int:
        """Bits per code dimension of a Compact int32 net; 1 for every other net."""
        return self.run_config["net_options"].get("bits", 1)

    def pairs(self) -> pd.DataFrame:
        """The dataset's pairs file named by the protocol, recorded in the provenance, less the
        pairs that name a dropped image, whose number the provenance records as
        ``pairs_dropped``: a face the policy dropped has no features to score."""
        pairs_file = Path(self.dataset_root) / self.protocol["pairs_file"]
        self.provenance.update(pairs_file=str(pairs_file), pairs_sha256=sha256_of(pairs_file))
        pairs = read_pairs(pairs_file)
        dropped = within_folder(np.array(sorted(self.dropped), dtype=str))
        gone = pairs["image1"].isin(dropped) | pairs["image2"].isin(dropped)
        self.provenance["pairs_dropped"] = int(gone.sum())
        return pairs[~gone].reset_index(drop=True)

    def video_pairs(self) -> pd.DataFrame:
        """The dataset's YouTube Faces splits file named by the protocol, recorded in the
        provenance."""
        pairs_file = Path(self.dataset_root) / self.protocol["pairs_file"]
        self.provenance.update(pairs_file=str(pairs_file), pairs_sha256=sha256_of(pairs_file))
        return read_ytf_splits(pairs_file)

    def scorer(self, name: str, layer: str | None) -> Scorer:
        """The pair scorer ``name``; a Joint Bayesian one is fitted on ``jb_train_path``'s
        features of ``layer``, which the provenance records."""
        if name not in JB_SCORERS:
            return SCORERS[name]
        self.provenance["joint_bayesian_train"] = str(self.jb_train_path)
        self.provenance["joint_bayesian_train_sha256"] = sha256_of(self.jb_train_path)
        options = {k: v for k, v in self.protocol["joint_bayesian"].items() if k != "train"}
        return joint_bayesian_scorer(name, options, self.jb_train_path, layer)


Kind = Callable[[ProtocolContext], dict[str, dict]]
KINDS: Registry[Kind] = Registry("protocol kind")
