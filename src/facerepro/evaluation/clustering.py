"""Clustering quality of face embeddings: pairwise precision / recall / F-measure and NMI.

FaceNet (Schroff, Kalenichenko, Philbin, CVPR 2015) shows agglomerative clustering of a
personal photo collection without a number; these are the usual scores for it. Faces are
clustered by agglomerative clustering on the cosine distance ``1 - cos(f_i, f_j)`` (scikit-
learn's ``AgglomerativeClustering``, average linkage by default; it holds the full N x N
distance matrix).

Pair counting, over the N (N - 1) / 2 unordered pairs of faces: with the contingency table
``n_ij`` (faces of identity i put in cluster j), row sums ``a_i`` and column sums ``b_j``,

    TP = sum_ij C(n_ij, 2)            (same identity, same cluster)
    TP + FP = sum_j C(b_j, 2)         (same cluster)
    TP + FN = sum_i C(a_i, 2)         (same identity)
    precision = TP / (TP + FP),  recall = TP / (TP + FN),  F = 2 TP / (2 TP + FP + FN).

F written this way equals ``2 P R / (P + R)`` and stays defined when one of P, R is not (all
singleton clusters: P = NaN, F = 0); a ratio with an empty denominator is NaN.

NMI: ``I(Y; C) / mean(H(Y), H(C))`` with the arithmetic mean of the two entropies (scikit-
learn's default ``average_method``; with it NMI equals the V-measure).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def _pairs(counts: np.ndarray) -> float:
    counts = np.asarray(counts, np.float64)
    return float((counts * (counts - 1) / 2).sum())


def pairwise_scores(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Pairwise precision, recall and F-measure of cluster labels against identities."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape or truth.ndim != 1:
        raise ValueError(f"need two label vectors of one length, got {truth.shape}, "
                         f"{pred.shape}")
    table = contingency_matrix(truth, pred, sparse=True)
    tp = _pairs(table.data)
    same_cluster = _pairs(np.asarray(table.sum(axis=0)).ravel())
    same_identity = _pairs(np.asarray(table.sum(axis=1)).ravel())
    fp, fn = same_cluster - tp, same_identity - tp
    return {
        "precision": tp / same_cluster if same_cluster else float("nan"),
        "recall": tp / same_identity if same_identity else float("nan"),
        "f_measure": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
    }


def nmi(truth: np.ndarray, pred: np.ndarray, average_method: str = "arithmetic") -> float:
    """Normalised mutual information between identities and clusters."""
    return float(normalized_mutual_info_score(truth, pred, average_method=average_method))


def agglomerative(features: np.ndarray, n_clusters: int | None = None,
                  distance_threshold: float | None = None,
                  linkage: str = "average") -> np.ndarray:
    """Cluster labels from agglomerative clustering on the cosine distance.

    Give exactly one of ``n_clusters`` and ``distance_threshold`` (a cosine distance: merging
    stops when the linkage distance would reach it).
    """
    if (n_clusters is None) == (distance_threshold is None):
        raise ValueError("give exactly one of n_clusters and distance_threshold")
    if linkage == "ward":
        raise ValueError("ward linkage needs Euclidean distances, not cosine")
    model = AgglomerativeClustering(n_clusters=n_clusters, distance_threshold=distance_threshold,
                                    metric="cosine", linkage=linkage)
    return model.fit_predict(np.asarray(features, np.float64))


def clustering_scores(features: np.ndarray, identities: np.ndarray,
                      n_clusters: int | None = None, distance_threshold: float | None = None,
                      linkage: str = "average") -> dict[str, float]:
    """Cluster the features and score them against the identities.

    With neither ``n_clusters`` nor ``distance_threshold`` the true number of identities is
    used (an oracle count; say so when reporting). Returns precision, recall, f_measure, nmi,
    n_clusters and n_identities.
    """
    identities = np.asarray(identities)
    n_identities = len(np.unique(identities))
    if n_clusters is None and distance_threshold is None:
        n_clusters = n_identities
    labels = agglomerative(features, n_clusters, distance_threshold, linkage)
    return {**pairwise_scores(identities, labels), "nmi": nmi(identities, labels),
            "n_clusters": float(len(np.unique(labels))), "n_identities": float(n_identities)}
