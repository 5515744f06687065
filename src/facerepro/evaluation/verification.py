"""LFW-style k-fold face verification for any pair scorer (higher score = more alike).

For each test fold, the threshold is the one with the highest accuracy on the other folds
(never the test fold). Candidate thresholds are -inf, the midpoints between consecutive
distinct training scores, and +inf; a pair is called "same" when ``score >= threshold``.
Tie rule: among equally accurate candidates the lowest threshold wins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, d) arrays."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return np.einsum("ij,ij->i", a, b)


SCORERS = {"cosine": cosine}


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


def k_fold(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """Accuracy per fold with thresholds from the other folds; ROC and AUC over all pairs."""
    scores, same, folds = np.asarray(scores, float), np.asarray(same, bool), np.asarray(folds)
    fold_ids = np.unique(folds)
    if len(fold_ids) < 2:
        raise ValueError("k-fold verification needs at least two folds")
    accuracy, thresholds = [], []
    for fold in fold_ids:
        test = folds == fold
        threshold, _ = best_threshold(scores[~test], same[~test])
        accuracy.append(float(np.mean((scores[test] >= threshold) == same[test])))
        thresholds.append(threshold)
    acc = np.array(accuracy)
    fpr, tpr, _ = roc_curve(same, scores)
    return {
        "accuracy_mean": float(acc.mean()),
        "accuracy_std": float(acc.std(ddof=1)),
        "accuracy_sem": float(acc.std(ddof=1) / np.sqrt(len(acc))),
        "fold_accuracy": accuracy,
        "fold_threshold": thresholds,
        "auc": float(roc_auc_score(same, scores)),
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "pairs": int(len(scores)),
        "folds": int(len(fold_ids)),
    }


def verify_pairs(features: np.ndarray, image_ids: np.ndarray, pairs: pd.DataFrame,
                 scorer: str = "cosine") -> dict:
    """Score the pairs (columns id1, id2, same, fold) and run :func:`k_fold` on them."""
    row = pd.Series(np.arange(len(image_ids)), index=image_ids)
    missing = sorted(set(pairs["id1"]).union(pairs["id2"]) - set(row.index))
    if missing:
        raise KeyError(f"{len(missing)} images of the pairs have no features (quarantined or "
                       f"not aligned?), e.g. {missing[:3]}; check the manifest")
    a = features[row[pairs["id1"]].to_numpy()]
    b = features[row[pairs["id2"]].to_numpy()]
    result = k_fold(SCORERS[scorer](a, b), pairs["same"].to_numpy(), pairs["fold"].to_numpy())
    result["scorer"] = scorer
    return result
