"""k-nearest-cluster classification (Eq. 10 of CLMLE) and the instance-kNN baseline.

After Huang, Li, Loy, Tang, "Deep Imbalanced Learning for Face Recognition and Attribute
Prediction" (TPAMI 2019; CLMLE in docs/papers.md), section 4. Features are L2-normalised; every
class is split by spherical k-means into clusters of about ``l`` samples (``l = 200`` in the
paper) whose unit-norm centroids ``mu_m`` carry their class ``c(mu_m)``. A query ``q``
retrieves its ``N`` nearest centroids by inner product ``q.mu_m`` and takes

    y_q = argmax_c  min_{m: c(mu_m) = c} e^{q.mu_m}  /  sum_{k: c(mu_k) != c} e^{q.mu_k},   (10)

both the min and the sum running over the ``N`` retrieved clusters only, and ``c`` over the
classes present among them: the class whose *least* similar retrieved cluster beats the
clusters of all other classes by the largest margin. It is computed in log space,
``min_m q.mu_m - log sum_k e^{q.mu_k}``. When all retrieved clusters belong to one class the
sum is empty and that class wins. Equal scores go to the first class in sorted order.
``N`` is searched on validation data in 20:10:200 (:func:`select_n_clusters`); ``N`` larger
than the number of clusters means all of them.

Speed. The search runs over ``L / l`` centroids rather than the ``L`` training samples, so an
exact search does about ``l`` times less work; the paper adds a KD-tree over the centroids
(``O(L/l log(L/l))``) and reports the cluster search "typically 1000 times faster than
standard kNN". Here both searches are exact brute-force inner products (faiss ``IndexFlatIP``),
so the measured gain is that of searching fewer vectors (bench/bench_knc.py).

Baseline (:class:`InstanceKNN`), the paper's "instance kNN" (Table 7 ablation): the ``k``
nearest training samples vote; a tie in votes goes to the class with the larger summed
similarity among the ``k``, then to the first class in sorted order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import faiss
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import balanced_accuracy_score
from sklearn.utils.validation import check_is_fitted

from facerepro.spherical_kmeans import cluster_per_class


def _unit_float32(x: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy with unit rows (faiss needs float32; zero rows stay zero)."""
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    if x.ndim != 2:
        raise ValueError(f"features must be an (n, d) array, got shape {x.shape}")
    faiss.normalize_L2(x)
    return x


def _class_groups(codes: np.ndarray, values: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group each row's retrieved items by class.

    Returns per (row, class present in that row) group: its row, its class code, the row's
    values sorted by class code (flattened) and the start of the group in that flat array, so
    that ``np.ufunc.reduceat(sorted_values, starts)`` reduces within groups.
    """
    n, depth = codes.shape
    order = np.argsort(codes, axis=1, kind="stable")
    codes = np.take_along_axis(codes, order, axis=1)
    new = np.ones((n, depth), dtype=bool)
    new[:, 1:] = codes[:, 1:] != codes[:, :-1]
    starts = np.flatnonzero(new.ravel())
    return (starts // depth, codes.ravel()[starts],
            np.take_along_axis(values, order, axis=1).ravel(), starts)


def _best_per_row(row: np.ndarray, code: np.ndarray, *keys: np.ndarray) -> np.ndarray:
    """Per row, the class code of the group with the largest ``keys`` (lexicographic, first
    key first); remaining ties go to the smallest class code."""
    # lexsort sorts by its last key first: row, then each key descending, then the code.
    order = np.lexsort((code, *(-k for k in reversed(keys)), row))
    first = np.ones(len(order), dtype=bool)
    first[1:] = row[order][1:] != row[order][:-1]
    return code[order[first]]


class _RetrievalVote(ClassifierMixin, BaseEstimator):
    """Shared machinery: a faiss inner-product index over unit vectors with class codes;
    ``predict`` retrieves the ``depth`` nearest vectors and lets the subclass decide."""

    _depth_param: str

    def _build(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        vectors = _unit_float32(vectors)
        labels = np.asarray(labels)
        if len(labels) != len(vectors) or len(vectors) == 0:
            raise ValueError(f"need one label per vector and at least one vector, got "
                             f"{len(vectors)} vectors and {len(labels)} labels")
        self.classes_, self.vector_codes_ = np.unique(labels, return_inverse=True)
        self.index_ = faiss.IndexFlatIP(vectors.shape[1])
        self.index_.add(vectors)
        self.n_features_in_ = vectors.shape[1]

    def _retrieve(self, x: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Similarities (n, depth) in float64, descending, and the class codes retrieved."""
        check_is_fitted(self, "index_")
        x = _unit_float32(x)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"fitted on {self.n_features_in_}-d features, got {x.shape[1]}-d")
        sims, ids = self.index_.search(x, depth)
        return sims.astype(np.float64), self.vector_codes_[ids]

    def _depth(self, requested: int) -> int:
        """The retrieval depth actually used: ``requested`` capped at the index size."""
        if requested < 1:
            raise ValueError(f"{self._depth_param} must be >= 1, got {requested}")
        return min(int(requested), self.index_.ntotal)

    def _vote(self, sims: np.ndarray, codes: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "index_")
        depth = self._depth(getattr(self, self._depth_param))
        return self.classes_[self._vote(*self._retrieve(X, depth))]


class KNearestClusterClassifier(_RetrievalVote):
    """The k-nearest-cluster rule of Eq. 10 (module docstring).

    ``fit(X, y)`` clusters each class into clusters of ``cluster_size`` samples with
    :func:`facerepro.spherical_kmeans.cluster_per_class`; ``fit_clusters`` takes a clustering
    made elsewhere (e.g. the last training round's). ``n_clusters`` is ``N``, the number of
    clusters retrieved per query.
    """

    _depth_param = "n_clusters"

    def __init__(self, cluster_size: int = 200, n_clusters: int = 20, seed: int = 0):
        self.cluster_size = cluster_size
        self.n_clusters = n_clusters
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> KNearestClusterClassifier:
        # cluster_per_class wants class ids 0..C-1; any label type is accepted here.
        classes, codes = np.unique(np.asarray(y), return_inverse=True)
        clusters = cluster_per_class(_unit_float32(X), codes, self.cluster_size, self.seed)
        return self.fit_clusters(clusters.centroids, classes[clusters.cluster_class])

    def fit_clusters(self, centroids: np.ndarray,
                     cluster_class: np.ndarray) -> KNearestClusterClassifier:
        """Index these cluster centroids (re-normalised: Eq. 10 uses unit ``mu``) and their
        classes."""
        self._build(centroids, cluster_class)
        self.centroids_ = self.index_.reconstruct_n(0, self.index_.ntotal)
        self.cluster_class_ = self.classes_[self.vector_codes_]
        return self

    def _vote(self, sims: np.ndarray, codes: np.ndarray) -> np.ndarray:
        row, code, sorted_sims, starts = _class_groups(codes, sims)
        size = np.diff(starts, append=sims.size)
        least = np.minimum.reduceat(sorted_sims, starts)
        # Unit vectors: |q.mu| <= 1, so e^{q.mu} lies in [1/e, e] and neither overflows nor
        # cancels: the other classes' sum is the row total minus the class's own.
        own = np.add.reduceat(np.exp(sorted_sims), starts)
        others = np.exp(sims).sum(axis=1)[row] - own
        alone = size == sims.shape[1]
        score = np.full(len(row), np.inf)
        score[~alone] = least[~alone] - np.log(others[~alone])
        return _best_per_row(row, code, score)


class InstanceKNN(_RetrievalVote):
    """Majority vote of the ``n_neighbors`` nearest training samples by cosine similarity
    (module docstring for the tie rule): the paper's instance-kNN baseline."""

    _depth_param = "n_neighbors"

    def __init__(self, n_neighbors: int = 20):
        self.n_neighbors = n_neighbors

    def fit(self, X: np.ndarray, y: np.ndarray) -> InstanceKNN:
        self._build(X, y)
        return self

    def _vote(self, sims: np.ndarray, codes: np.ndarray) -> np.ndarray:
        row, code, sorted_sims, starts = _class_groups(codes, sims)
        votes = np.diff(starts, append=sims.size)
        return _best_per_row(row, code, votes, np.add.reduceat(sorted_sims, starts))


def select_n_clusters(clf: KNearestClusterClassifier | InstanceKNN, X_val: np.ndarray,
                      y_val: np.ndarray, grid: Iterable[int] = range(20, 201, 10),
                      metric: Callable[[np.ndarray, np.ndarray], float] = balanced_accuracy_score,
                      ) -> tuple[int, dict[int, float]]:
    """The retrieval depth (``N`` of Eq. 10, or ``k`` of :class:`InstanceKNN`) that scores best
    on validation data, and the score of every depth tried.

    Grid values above the number of indexed vectors collapse to that number, so the scores are
    keyed by the depth actually used; ties go to the smallest depth. One search at the largest
    depth serves every depth (faiss returns neighbours in descending similarity, so the
    ``n`` nearest are its first ``n``). ``metric(y_true, y_pred)``: higher is better, balanced
    accuracy by default. The classifier is not changed: set the depth with ``set_params``.
    """
    check_is_fitted(clf, "index_")
    depths = sorted({clf._depth(n) for n in grid})
    if not depths:
        raise ValueError("the grid of depths is empty")
    sims, codes = clf._retrieve(X_val, depths[-1])
    scores = {n: float(metric(np.asarray(y_val),
                              clf.classes_[clf._vote(sims[:, :n], codes[:, :n])]))
              for n in depths}
    return max(depths, key=lambda n: (scores[n], -n)), scores
