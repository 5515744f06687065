"""Joint Bayesian face verification (Chen, Cao, Wang, Wen, Sun, ECCV 2012), sklearn-style.

Model: a face is ``x = mu + eps`` with identity ``mu ~ N(0, S_mu)`` and within-person variation
``eps ~ N(0, S_eps)``, after centring (and optionally PCA) fitted on the training features only;
scoring reuses that fitted projection and never refits it.

Score (the log-likelihood ratio of "same" against "different", up to a constant and a factor 2):

    r(x1, x2) = x1' A x1 + x2' A x2 - 2 x1' G x2,
    F = S_eps^-1,  G = -(2 S_mu + S_eps)^-1 S_mu S_eps^-1,  A = (S_mu + S_eps)^-1 - (F + G).

EM: the E-step gives, per identity i with m_i images summing to s_i = sum_j x_ij, the posterior
of mu_i: ``P_i = (S_mu^-1 + m_i S_eps^-1)^-1`` and ``mean_i = P_i S_eps^-1 s_i``. Exact EM (the
default) adds the posterior covariance to both M-step updates,

    S_mu  = 1/n_ids  sum_i (mean_i mean_i' + P_i),
    S_eps = 1/n_imgs sum_ij ((x_ij - mean_i)(x_ij - mean_i)' + P_i)
          = 1/n_imgs (S_w + sum_i m_i ((xbar_i - mean_i)(xbar_i - mean_i)' + P_i)),

with ``xbar_i = s_i / m_i`` and ``S_w = sum_ij (x_ij - xbar_i)(x_ij - xbar_i)'`` the
within-class scatter, which does not change across iterations. ``update="posterior_mean"``
drops the P_i terms, as the paper and most public code do; that is biased low (docs/papers.md,
"Joint Bayesian").

Numerics. The E-step uses ``S_mu + rho I`` and ``S_eps + rho I`` (rho = ``ridge``) and needs no
inverse at all, let alone one per identity: the generalised symmetric-definite eigenproblem

    (S_mu + rho I) W = (S_eps + rho I) W diag(lambda),   W' (S_eps + rho I) W = I,

(one Cholesky factorisation and one symmetric eigendecomposition) diagonalises both, so with
``B = (S_eps + rho I) W = W^-T``, ``t_i = W' s_i`` and ``g_i = lambda / (1 + m_i lambda)``

    P_i = B diag(g_i) B',   mean_i = B (g_i * t_i),
    sqrt(m_i) (xbar_i - mean_i) = B (t_i / (sqrt(m_i) (1 + m_i lambda))),

and each M-step sum is ``B C B'`` with C a d x d product of n_ids x d arrays plus a diagonal
(``sum_i P_i = B diag(sum_i g_i) B'``). S_mu need not be invertible: a direction with
``lambda = 0`` gets a zero posterior, the limit of the formula. The score's F, G and A involve
S_mu and ``S_eps + rho I`` only, so the same eigenproblem without the ridge on S_mu gives them
as ``W diag(.) W'`` (see :meth:`JointBayesian.score_pairs`).

Identities with one image enter the E-step like any other (``m_i = 1``) and so both updates,
but add nothing to S_w: the within-person covariance is identified only by identities with at
least two images, and a training set without any is rejected.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning


class JointBayesian(BaseEstimator):
    """``fit(X, y)`` learns S_mu and S_eps; ``score_pairs(A, B)`` scores rows pairwise.

    ``max_iter`` and ``tol`` bound EM: it stops once the largest change of S_mu or S_eps,
    relative to the largest entry of that matrix, is below ``tol`` (``converged_``), or after
    ``max_iter`` iterations with a :class:`~sklearn.exceptions.ConvergenceWarning`.
    ``chunk`` is how many pairs :meth:`score_pairs` handles at once: it bounds the memory of
    scoring (about ``(d_in + 3 d) * chunk * 8`` bytes for d_in input and d model dimensions),
    not the result.

    Fitted: ``mean_`` and ``pca_`` (training centring and PCA, or None: no ``n_components``,
    or not fewer than the features' dimensions), ``s_mu_``,
    ``s_eps_``, ``A_``, ``G_``, ``n_iter_``, ``converged_``, and for scoring ``offset_``,
    ``projection_`` (centring, PCA and W as one affine map), ``score_a_`` and ``score_g_``
    (the diagonals of A and G in W's basis).
    """

    def __init__(self, n_components: int | None = None, update: str = "exact",
                 max_iter: int = 100, tol: float = 1e-6, ridge: float = 1e-6,
                 chunk: int = 8192) -> None:
        self.n_components = n_components
        self.update = update
        self.max_iter = max_iter
        self.tol = tol
        self.ridge = ridge
        self.chunk = chunk

    def fit(self, X: np.ndarray, y: np.ndarray) -> JointBayesian:
        if self.update not in ("exact", "posterior_mean"):
            raise ValueError(f"update must be 'exact' or 'posterior_mean', not {self.update!r}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, not {self.max_iter}")
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be 2-d with one label per row: X {X.shape}, y {y.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X has NaN or infinite values")
        _, label, counts = np.unique(y, return_inverse=True, return_counts=True)
        if len(counts) < 2:
            raise ValueError("Joint Bayesian needs at least two identities to estimate S_mu")
        if counts.max() < 2:
            raise ValueError("every identity has a single image: the within-person covariance "
                             "S_eps is unidentifiable; Joint Bayesian needs identities with at "
                             "least two images")
        self.mean_ = X.mean(0)
        x = X - self.mean_
        self.pca_ = None
        # A PCA to as many dimensions as the features have would only rotate them (one
        # protocol scores 8-d codes and 1,024-d activations alike), so it is skipped.
        if self.n_components is not None and self.n_components < x.shape[1]:
            self.pca_ = PCA(self.n_components, random_state=0).fit(x)
            x = self.pca_.transform(x)
        n_ids, d = len(counts), x.shape[1]
        order = np.argsort(label, kind="stable")
        sums = np.add.reduceat(x[order], np.cumsum(counts) - counts)   # s_i per identity
        means = sums / counts[:, None]
        within = x - means[label]
        scatter_w = within.T @ within       # S_w: one product, reused by every iteration
        # start: between-class and within-class scatter of the class means
        s_mu = np.cov(means, rowvar=False, bias=True).reshape(d, d)
        s_eps = scatter_w / len(x)
        exact = self.update == "exact"
        m = counts[:, None].astype(np.float64)
        ridge = self.ridge * np.eye(d)
        self.converged_ = False
        for iteration in range(1, self.max_iter + 1):
            lam, w = self._diagonalise(s_mu + ridge, s_eps + ridge)
            b = (s_eps + ridge) @ w                # B = W^-T
            t = sums @ w                           # W' s_i, one row per identity
            shrink = 1.0 / (1.0 + m * lam)
            g = lam * shrink                       # diagonal of W^-1 P_i W^-T
            post = g * t                           # W^-1 mean_i
            # sqrt(m_i) W^-1 (xbar_i - mean_i) = t_i (1/m_i - g_i) sqrt(m_i), without cancelling
            dev = t * shrink / np.sqrt(m)
            core_mu, core_eps = post.T @ post, dev.T @ dev
            if exact:                              # sum_i P_i and sum_i m_i P_i, in W's basis
                core_mu[np.diag_indices(d)] += g.sum(0)
                core_eps[np.diag_indices(d)] += (m * g).sum(0)
            new_mu = _symmetric(b @ core_mu @ b.T) / n_ids
            new_eps = (scatter_w + _symmetric(b @ core_eps @ b.T)) / len(x)
            change = max(np.abs(new_mu - s_mu).max() / (np.abs(s_mu).max() + 1e-12),
                         np.abs(new_eps - s_eps).max() / (np.abs(s_eps).max() + 1e-12))
            s_mu, s_eps, self.n_iter_ = new_mu, new_eps, iteration
            if change < self.tol:
                self.converged_ = True
                break
        if not self.converged_:
            warnings.warn(f"Joint Bayesian EM stopped at max_iter={self.max_iter} with relative "
                          f"change {change:.3g} > tol={self.tol}", ConvergenceWarning,
                          stacklevel=2)
        self.s_mu_, self.s_eps_ = s_mu, s_eps
        # F, G and A involve S_mu and S_eps + rho I only, so one diagonalisation gives all three
        lam, w = self._diagonalise(s_mu, s_eps + ridge)
        self.score_a_ = -lam**2 / ((1.0 + lam) * (1.0 + 2.0 * lam))
        self.score_g_ = -lam / (1.0 + 2.0 * lam)
        self.A_ = _symmetric((w * self.score_a_) @ w.T)
        self.G_ = _symmetric((w * self.score_g_) @ w.T)
        # centring, PCA and W folded into one affine map for scoring
        self.offset_, self.projection_ = self.mean_, w
        if self.pca_ is not None:
            self.offset_ = self.mean_ + self.pca_.mean_
            self.projection_ = self.pca_.components_.T @ w
        return self

    def _diagonalise(self, s_mu: np.ndarray, s_eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """lambda, W with ``s_mu W = s_eps W diag(lambda)`` and ``W' s_eps W = I``."""
        try:
            lam, w = linalg.eigh(s_mu, s_eps, check_finite=False)
        except linalg.LinAlgError as err:
            raise ValueError("S_eps + ridge * I is not positive definite: increase ridge "
                             f"(now {self.ridge})") from err
        return np.clip(lam, 0.0, None), w  # S_mu is PSD: negative lambda is round-off

    def score_pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """r(a_k, b_k) for every row k, ``chunk`` pairs at a time.

        In the basis W that diagonalises S_mu against S_eps + rho I (``S_mu W = (S_eps + rho I) W
        diag(lambda)``, ``W' (S_eps + rho I) W = I``), ``A = W diag(alpha) W'`` and
        ``G = W diag(gamma) W'`` with ``alpha = -lambda^2 / ((1 + lambda)(1 + 2 lambda))`` and
        ``gamma = -lambda / (1 + 2 lambda)``. So with ``p = W' a`` and ``q = W' b`` (after
        centring and PCA, folded into ``projection_``)

            r = sum_k alpha_k (p_k^2 + q_k^2) - 2 gamma_k p_k q_k:

        two matrix products per chunk instead of three, and memory bounded by the chunk.
        """
        a, b = np.asarray(a), np.asarray(b)
        if len(a) != len(b):
            raise ValueError(f"a and b must have as many rows: {len(a)} != {len(b)}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be at least 1, not {self.chunk}")
        scores = np.empty(len(a))
        for start in range(0, len(a), self.chunk):
            rows = slice(start, start + self.chunk)
            p = (np.asarray(a[rows], dtype=np.float64) - self.offset_) @ self.projection_
            q = (np.asarray(b[rows], dtype=np.float64) - self.offset_) @ self.projection_
            cross = (p * q) @ self.score_g_
            p *= p                      # in place: no further chunk-sized buffers
            q *= q
            p += q
            scores[rows] = p @ self.score_a_ - 2 * cross
        return scores


def _symmetric(s: np.ndarray) -> np.ndarray:
    """(S + S') / 2: products like B C B' are symmetric up to round-off only."""
    return (s + s.T) / 2
