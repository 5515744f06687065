"""Joint Bayesian face verification (Chen, Cao, Wang, Wen, Sun, ECCV 2012), sklearn-style.

Model: a face is ``x = mu + eps`` with identity ``mu ~ N(0, S_mu)`` and within-person variation
``eps ~ N(0, S_eps)``, after centring (and optionally PCA) fitted on the training features.

Score (the log-likelihood ratio of "same" against "different", up to a constant and a factor 2):

    r(x1, x2) = x1' A x1 + x2' A x2 - 2 x1' G x2,
    F = S_eps^-1,  G = -(2 S_mu + S_eps)^-1 S_mu S_eps^-1,  A = (S_mu + S_eps)^-1 - (F + G).

EM: the E-step gives, per identity i with m_i images, the posterior of mu_i:
``P_i = (S_mu^-1 + m_i S_eps^-1)^-1`` and ``mean_i = P_i S_eps^-1 sum_j x_ij``. Exact EM
(the default) adds the posterior covariance to both M-step updates,

    S_mu  = 1/n_ids  sum_i (mean_i mean_i' + P_i),
    S_eps = 1/n_imgs sum_ij ((x_ij - mean_i)(x_ij - mean_i)' + P_i);

``update="posterior_mean"`` drops the P_i terms, as the paper and most public code do; that is
biased low (PAPERS.md, "Joint Bayesian").
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA


class JointBayesian(BaseEstimator):
    """``fit(X, y)`` learns S_mu and S_eps; ``score_pairs(A, B)`` scores rows pairwise."""

    def __init__(self, n_components: int | None = None, update: str = "exact",
                 max_iter: int = 100, tol: float = 1e-6, ridge: float = 1e-6) -> None:
        self.n_components = n_components
        self.update = update
        self.max_iter = max_iter
        self.tol = tol
        self.ridge = ridge

    def _project(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64) - self.mean_
        return self.pca_.transform(x) if self.pca_ is not None else x

    def fit(self, X: np.ndarray, y: np.ndarray) -> JointBayesian:
        if self.update not in ("exact", "posterior_mean"):
            raise ValueError(f"update must be 'exact' or 'posterior_mean', not {self.update!r}")
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(0)
        self.pca_ = None
        if self.n_components is not None:
            self.pca_ = PCA(self.n_components, random_state=0).fit(X - self.mean_)
        x = self._project(X)
        _, label = np.unique(np.asarray(y), return_inverse=True)
        n_ids, d = label.max() + 1, x.shape[1]
        counts = np.bincount(label)
        sums = np.zeros((n_ids, d))
        np.add.at(sums, label, x)
        # start: between-class and within-class scatter of the class means
        means = sums / counts[:, None]
        s_mu = np.cov(means, rowvar=False, bias=True).reshape(d, d)
        s_eps = np.cov(x - means[label], rowvar=False, bias=True).reshape(d, d)
        eye = self.ridge * np.eye(d)
        for iteration in range(1, self.max_iter + 1):
            inv_mu = linalg.inv(s_mu + eye, check_finite=False)
            inv_eps = linalg.inv(s_eps + eye, check_finite=False)
            new_mu, new_eps = np.zeros((d, d)), np.zeros((d, d))
            resid = np.empty_like(x)
            for m in np.unique(counts):     # identities with m images share P_i
                ids = np.flatnonzero(counts == m)
                p = linalg.inv(inv_mu + m * inv_eps, check_finite=False)
                post = sums[ids] @ inv_eps @ p          # p and inv_eps are symmetric
                new_mu += post.T @ post
                rows = np.isin(label, ids)
                resid[rows] = x[rows] - post[np.searchsorted(ids, label[rows])]
                if self.update == "exact":
                    new_mu += len(ids) * p
                    new_eps += len(ids) * m * p
            new_mu /= n_ids
            new_eps = (new_eps + resid.T @ resid) / len(x)
            change = max(np.abs(new_mu - s_mu).max() / (np.abs(s_mu).max() + 1e-12),
                         np.abs(new_eps - s_eps).max() / (np.abs(s_eps).max() + 1e-12))
            s_mu, s_eps, self.n_iter_ = new_mu, new_eps, iteration
            if change < self.tol:
                break
        self.s_mu_, self.s_eps_ = s_mu, s_eps
        f = linalg.inv(s_eps + eye)
        self.G_ = -linalg.solve(2 * s_mu + s_eps + eye, s_mu @ f, assume_a="sym")
        self.A_ = linalg.inv(s_mu + s_eps + eye) - (f + self.G_)
        return self

    def score_pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """r(a_k, b_k) for every row k; vectorised, so millions of pairs are matrix products."""
        a, b = self._project(a), self._project(b)
        return (np.einsum("ij,jk,ik->i", a, self.A_, a) + np.einsum("ij,jk,ik->i", b, self.A_, b)
                - 2 * np.einsum("ij,jk,ik->i", a, self.G_, b))
