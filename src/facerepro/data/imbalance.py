"""Simulated class imbalance: a power-law subsample of a dataset's classes (CLMLE Table 8).

CLMLE (Huang, Li, Loy, Tang, TPAMI 2019, Sec. 5.5), after Dong et al.'s CRL: class ``c`` in
``1..C`` keeps

    L_c = L_max / (c^gamma + L_min)

training images. The paper runs it on CIFAR-100; with no CIFAR-100 here it runs on the
identities of a face set. The ``classes`` identities with the most images take part (ties by
name), ranked so; each first gives ``test_per_class`` images to a balanced test set, then keeps
``L_c`` of the rest for training (rounded, at least 1, at most what it has left). The split
depends only on the image ids, the identities and the settings, so the trainer and the
evaluation draw the same one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRAIN, TEST = "train", "test"
# The features view of a run's power-law classes: its training faces and their test faces.
POWER_LAW = "powerlaw"


def power_law_sizes(classes: int, gamma: float, l_max: float, l_min: float) -> np.ndarray:
    """``L_c`` for c = 1..classes, rounded, at least 1."""
    c = np.arange(1, classes + 1, dtype=np.float64)
    return np.maximum(1, np.rint(l_max / (c ** gamma + l_min))).astype(np.int64)


def power_law_split(image_ids: np.ndarray, identity: np.ndarray, classes: int, gamma: float,
                    l_max: float, l_min: float, test_per_class: int,
                    seed: int) -> pd.DataFrame:
    """One row per chosen image: image_id, identity, rank (1 = largest class), role
    (train / test), in image-id order."""
    table = pd.DataFrame({"image_id": np.asarray(image_ids).astype(str),
                          "identity": np.asarray(identity).astype(str)}
                         ).sort_values("image_id", kind="stable")
    counts = table["identity"].value_counts()
    ranked = sorted(counts.index, key=lambda name: (-counts[name], name))
    if len(ranked) < classes:
        raise ValueError(f"{classes} classes asked for; the data has {len(ranked)} identities")
    ranked = ranked[:classes]
    smallest = counts[ranked[-1]]
    if smallest <= test_per_class:
        raise ValueError(f"the {classes}th largest identity has {smallest} images, not more than "
                         f"test_per_class = {test_per_class}: lower classes or test_per_class")
    sizes = power_law_sizes(classes, gamma, l_max, l_min)
    rng = np.random.default_rng(seed)
    parts = []
    for rank, (name, size) in enumerate(zip(ranked, sizes, strict=True), start=1):
        ids = table.loc[table["identity"] == name, "image_id"].to_numpy()
        order = rng.permutation(len(ids))
        test, rest = ids[order[:test_per_class]], ids[order[test_per_class:]]
        train = rest[:min(size, len(rest))]
        parts.append(pd.DataFrame({"image_id": np.concatenate([train, test]), "identity": name,
                                   "rank": rank,
                                   "role": [TRAIN] * len(train) + [TEST] * len(test)}))
    return pd.concat(parts).sort_values("image_id", kind="stable").reset_index(drop=True)


def power_law_faces(index: pd.DataFrame, imbalance: dict) -> pd.DataFrame:
    """The rows of a shard index that the power-law subsample of its ``train`` split chooses,
    in shard order, with their ``role``: the faces a run with ``imbalance`` trains on (train)
    and is scored on (test)."""
    train = index[index["split"] == "train"]
    split = power_law_split(train["image_id"].to_numpy(), train["identity"].to_numpy(),
                            **imbalance)
    role = train["image_id"].astype(str).map(split.set_index("image_id")["role"])
    return train.assign(role=role)[role.notna()]
