"""Evaluation protocols: pairs read from the datasets' own files (LFW ``pairs.txt``), and
the splits we make ourselves (identities held out from training).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def read_pairs(path: str | Path) -> pd.DataFrame:
    """Parse an LFW ``pairs.txt``: header ``folds<TAB>n``, then per fold n same, n different.

    Returns one row per pair in file order with columns fold, name1, num1, name2, num2, same,
    and id1, id2 (the manifest image_ids). The fold of a pair is its position in the file, as
    in the official protocol.
    """
    lines = Path(path).read_text().splitlines()
    try:
        folds, per_fold = (int(v) for v in lines[0].split())
    except ValueError as exc:
        raise ValueError(f"{path}: first line must be '<folds>\\t<pairs per fold>'") from exc
    body = [line.split() for line in lines[1:] if line.strip()]
    expected = folds * 2 * per_fold
    if len(body) != expected:
        raise ValueError(f"{path}: {len(body)} pair lines, header promises {expected}")
    rows = []
    for i, fields in enumerate(body):
        fold, within = divmod(i, 2 * per_fold)
        same = within < per_fold
        if same and len(fields) == 3:
            rows.append((fold, fields[0], int(fields[1]), fields[0], int(fields[2]), True))
        elif not same and len(fields) == 4:
            rows.append((fold, fields[0], int(fields[1]), fields[2], int(fields[3]), False))
        else:
            raise ValueError(f"{path}: line {i + 2} {' '.join(fields)!r} is not a "
                             f"{'same' if same else 'different'}-person pair")
    pairs = pd.DataFrame(rows, columns=["fold", "name1", "num1", "name2", "num2", "same"])
    pairs["id1"] = [lfw_image_id(n, k) for n, k in zip(pairs.name1, pairs.num1, strict=True)]
    pairs["id2"] = [lfw_image_id(n, k) for n, k in zip(pairs.name2, pairs.num2, strict=True)]
    return pairs


def lfw_image_id(name: str, num: int) -> str:
    """The manifest image_id of LFW image ``num`` (1-based) of person ``name``."""
    return f"lfw/{name}/{name}_{num:04d}"


HOLDOUT = "holdout"


def hold_out_identities(manifest: pd.DataFrame, identities: int, seed: int,
                        min_images: int = 2) -> pd.DataFrame:
    """Mark ``identities`` people of a training set as split ``holdout``: never trained on.

    DeepID2+ trains Joint Bayesian on 2,000 people held out from net training. Only people
    with at least ``min_images`` kept images are eligible, because a class with one image
    carries no within-person information, and only people whose images are all in split
    ``train``, so that no test or validation image is ever moved. The choice is a seeded
    permutation of the eligible names in sorted order: it depends only on the data and seed.
    """
    kept = manifest[manifest["status"] == "kept"]
    sizes = kept.groupby("identity").size()
    # people with any non-training image (a test or validation split) are never moved
    training_only = kept.groupby("identity")["split"].agg(lambda s: (s == "train").all())
    eligible = np.sort(sizes.index[(sizes >= min_images)
                                   & training_only.reindex(sizes.index)].to_numpy(dtype=str))
    if identities > len(eligible):
        raise ValueError(f"holdout asks for {identities} identities but only {len(eligible)} "
                         f"have >= {min_images} kept images, all in split train; lower "
                         f"holdout.identities")
    chosen = np.random.default_rng(seed).permutation(eligible)[:identities]
    out = manifest.copy()
    out.loc[out["identity"].isin(chosen), "split"] = HOLDOUT
    return out
