"""LFW-style k-fold face verification for any pair scorer (higher score = more alike).

Accuracy: for each test fold, the threshold is the one with the highest accuracy on the other
folds (never the test fold). Candidate thresholds are -inf, the midpoints between consecutive
distinct training scores, and +inf; a pair is called "same" when ``score >= threshold``.
Tie rule: among equally accurate candidates the lowest threshold wins.

VAL at FAR (FaceNet, Sec. 4): ``VAL(t) = |same pairs with score >= t| / |P_same|`` and
``FAR(t) = |different pairs with score >= t| / |P_diff|``. For each test fold the threshold
for a target FAR is read off the training folds' empirical FAR curve, linearly interpolated
between the distinct different-pair scores (below the smallest reachable FAR, 1 / |P_diff|,
the threshold sits just above the highest different-pair score, so the training FAR is 0).
VAL and the realised FAR are then measured on the test fold, whose FAR resolution
(1 / its different pairs) is reported next to them: on LFW (300 different pairs a fold) a FAR
of 1e-3 is below one false accept.

EER: the rate where the false accept and false reject rates are equal, on the ROC of all
pairs, linearly interpolated between ROC points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from facerepro.data.protocols import within_folder
from facerepro.evaluation import metrics
from facerepro.evaluation.analysis import binarize
from facerepro.registries import Registry

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
SCORERS: Registry[Scorer] = Registry("scorer")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


@SCORERS.register("cosine")
def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, d) arrays."""
    return np.einsum("ij,ij->i", unit_rows(a), unit_rows(b))


@SCORERS.register("euclidean")
def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minus the squared L2 distance (FaceNet's D(x_i, x_j)), so higher means more alike."""
    return -np.einsum("ij,ij->i", a - b, a - b)


@SCORERS.register("l1")
def l1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minus the L1 distance: the Compact int32 paper's distance between integer codes."""
    return -np.abs(a - b).sum(1)


@SCORERS.register("hamming")
def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minus the Hamming distance of the codes ``x > 0`` (DeepID2+ binarised features)."""
    return -(binarize(a) != binarize(b)).sum(1).astype(np.float64)


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy on these pairs; lowest threshold on ties."""
    order = np.argsort(scores, kind="stable")
    s, y = np.asarray(scores, float)[order], np.asarray(same, bool)[order]
    n = len(s)
    # Threshold k (0..n) calls the k lowest scores "different" and the rest "same".
    diff_below = np.concatenate([[0], np.cumsum(~y)])
    same_above = y.sum() - np.concatenate([[0], np.cumsum(y)])
    correct = diff_below + same_above
    # A cut between two equal scores cannot be realised by any threshold.
    valid = np.ones(n + 1, bool)
    valid[1:n] = s[1:] > s[:-1]
    correct = np.where(valid, correct, -1)
    k = int(np.argmax(correct))
    if k == 0:
        threshold = -np.inf
    elif k == n:
        threshold = np.inf
    else:
        threshold = (s[k - 1] + s[k]) / 2
    return float(threshold), correct[k] / n


def far_threshold(different_scores: np.ndarray, far: float) -> float:
    """Threshold whose FAR on these different-pair scores is ``far`` (interpolated)."""
    values, counts = np.unique(np.asarray(different_scores, float), return_counts=True)
    values, counts = values[::-1], counts[::-1]
    fars = np.cumsum(counts) / counts.sum()           # FAR(t = values[i]), increasing
    if far < fars[0]:
        return float(np.nextafter(values[0], np.inf))
    return float(np.interp(far, fars, values))


def equal_error_rate(same: np.ndarray, scores: np.ndarray) -> float:
    """The rate at which false accepts equal false rejects, interpolated along the ROC."""
    fpr, tpr, _ = roc_curve(same, scores)
    gap = fpr - (1 - tpr)                             # rises from -1 to +1 along the ROC
    i = int(np.argmax(gap >= 0))
    if i == 0:
        return float(fpr[0])
    w = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def _far_key(far: float) -> str:
    return f"{far:g}"


def k_fold(scores: np.ndarray, same: np.ndarray, folds: np.ndarray,
           fars: Sequence[float] = (1e-3, 1e-2)) -> dict:
    """Accuracy and VAL at each FAR per fold (thresholds from the other folds); ROC, AUC, EER.

    Returns the scorer entry of the metrics schema: ``values`` (summaries), ``per_fold``,
    ``n`` (counts), ``curves`` (the ROC over all pairs) and ``items`` (per pair, for
    accuracy and VAL: what a paired comparison of two runs needs). A fold whose best cut calls every
    training pair the same class has an infinite threshold, written as null.
    """
    scores, same, folds = np.asarray(scores, float), np.asarray(same, bool), np.asarray(folds)
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise ValueError("k-fold verification needs at least two folds")
    per_fold: dict[str, list[float]] = {"accuracy": [], "threshold": []}
    for far in fars:
        per_fold[f"val@far={_far_key(far)}"] = []
        per_fold[f"far@far={_far_key(far)}"] = []
    resolution = []
    # Per pair: its share of accuracy_mean (correct / (folds * fold size)) and, for same pairs,
    # of each VAL; so each summary is the mean of its items, also when folds differ in size.
    correct = np.zeros(len(scores))
    hits = {far: np.zeros(len(scores)) for far in fars}
    for fold in fold_ids:
        test = folds == fold
        threshold, _ = best_threshold(scores[~test], same[~test])
        right = (scores[test] >= threshold) == same[test]
        per_fold["accuracy"].append(float(np.mean(right)))
        correct[test] = right * len(scores) / (len(fold_ids) * test.sum())
        # JSON has no infinity: an all-same or all-different cut is written as null.
        per_fold["threshold"].append(threshold if np.isfinite(threshold) else None)
        test_same, test_diff = scores[test & same], scores[test & ~same]
        resolution.append(1 / len(test_diff))
        for far in fars:
            t = far_threshold(scores[~test & ~same], far)
            per_fold[f"val@far={_far_key(far)}"].append(float(np.mean(test_same >= t)))
            hits[far][test & same] = ((test_same >= t) * same.sum()
                                      / (len(fold_ids) * len(test_same)))
            per_fold[f"far@far={_far_key(far)}"].append(float(np.mean(test_diff >= t)))
    acc = np.array(per_fold["accuracy"])
    values = {"accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std(ddof=1)),
              "accuracy_sem": float(acc.std(ddof=1) / np.sqrt(len(acc))),
              "auc": float(roc_auc_score(same, scores)),
              "eer": equal_error_rate(same, scores),
              "far_resolution": float(max(resolution))}
    for far in fars:
        val = np.array(per_fold[f"val@far={_far_key(far)}"])
        values[f"val@far={_far_key(far)}"] = float(val.mean())
        values[f"val_std@far={_far_key(far)}"] = float(val.std(ddof=1))
        values[f"far@far={_far_key(far)}"] = float(np.mean(per_fold[f"far@far={_far_key(far)}"]))
    fpr, tpr, _ = roc_curve(same, scores)
    # Items are named by the pair's position in the pairs file, which every run shares.
    pair = np.arange(len(scores))
    items = {"accuracy_mean": metrics.items(pair, correct)}
    items.update({f"val@far={_far_key(far)}": metrics.items(pair[same], hits[far][same])
                  for far in fars})
    return {"values": values, "per_fold": per_fold,
            "n": {"pairs": int(len(scores)), "folds": int(len(fold_ids)),
                  "same": int(same.sum()), "different": int((~same).sum())},
            "curves": {"roc": {"x": fpr.tolist(), "y": tpr.tolist()}},
            "items": items}


class MissingPairImages(KeyError):
    """Images named by a pairs file have no features; ``names`` lists them."""

    def __init__(self, names: list[str]):
        self.names = names
        super().__init__(f"{len(names)} images named by the pairs have no features, e.g. "
                         f"{names[:3]}: not in the dataset's folder, quarantined or not aligned "
                         f"(the manifest says which and why); correct the pairs file or the "
                         f"images")

    def __str__(self) -> str:
        return self.args[0]


def pair_rows(image_ids: np.ndarray, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows of the pairs' two images (columns image1, image2: names within the image
    folder, :func:`facerepro.data.protocols.within_folder`); :class:`MissingPairImages` when
    some have none."""
    row = pd.Series(np.arange(len(image_ids)), index=within_folder(image_ids))
    missing = sorted(set(pairs["image1"]).union(pairs["image2"]) - set(row.index))
    if missing:
        raise MissingPairImages(missing)
    return row[pairs["image1"]].to_numpy(), row[pairs["image2"]].to_numpy()


def verify_pairs(features: np.ndarray, image_ids: np.ndarray, pairs: pd.DataFrame,
                 scorer: Scorer = cosine, fars: Sequence[float] = (1e-3, 1e-2)) -> dict:
    """Score the pairs (columns image1, image2, same, fold) and run :func:`k_fold` on them."""
    i, j = pair_rows(image_ids, pairs)
    return k_fold(scorer(features[i], features[j]), pairs["same"].to_numpy(),
                  pairs["fold"].to_numpy(), fars)


def set_scores(features: np.ndarray, set_ids: np.ndarray, order: np.ndarray,
               pairs_a: np.ndarray, pairs_b: np.ndarray, n_frames: int = 100,
               metric: str = "cosine") -> np.ndarray:
    """Set-to-set similarity of video pairs (YTF style; FaceNet Sec. 5.7).

    Each set is its first ``n_frames`` rows by ``order``; the score is the mean pairwise
    similarity over all frame pairs: cosine, or minus the squared L2 distance. Both are
    bilinear, so the mean over pairs reduces to the per-set means:
    ``mean cos = <mean a_hat, mean b_hat>`` and
    ``mean ||a - b||^2 = mean |a|^2 + mean |b|^2 - 2 <mean a, mean b>``.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"set metric must be cosine or euclidean, not {metric!r}")
    x = unit_rows(features) if metric == "cosine" else np.asarray(features, np.float64)
    frame = pd.DataFrame({"set": set_ids, "order": order}).sort_values(["set", "order"],
                                                                         kind="stable")
    first = frame[frame.groupby("set").cumcount() < n_frames]
    rows, sets = first.index.to_numpy(), first["set"].to_numpy()
    mean = pd.DataFrame(x[rows]).groupby(sets).mean()
    sq = pd.Series((x[rows] ** 2).sum(1)).groupby(sets).mean()
    missing = sorted(set(pairs_a).union(pairs_b) - set(mean.index))
    if missing:
        raise KeyError(f"{len(missing)} sets of the pairs have no frames, e.g. {missing[:3]}")
    ma, mb = mean.loc[pairs_a].to_numpy(), mean.loc[pairs_b].to_numpy()
    dot = np.einsum("ij,ij->i", ma, mb)
    if metric == "cosine":
        return dot
    return -(sq.loc[pairs_a].to_numpy() + sq.loc[pairs_b].to_numpy() - 2 * dot)
