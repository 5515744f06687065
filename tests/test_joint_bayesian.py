import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning

from facerepro.evaluation.joint_bayesian import JointBayesian


def draw(seed, d=6, ids=400, low=2, high=11, counts=None):
    """Features drawn from the Joint Bayesian model itself, with known covariances.

    ``counts`` (images per identity) overrides ``ids``, ``low`` and ``high``.
    """
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    s_mu = q @ np.diag(np.linspace(1.0, 3.0, d)) @ q.T
    s_eps = np.diag(np.linspace(0.2, 0.8, d))
    if counts is None:
        counts = rng.integers(low, high + 1, ids)
    ids = len(counts)
    mu = rng.multivariate_normal(np.zeros(d), s_mu, ids)
    y = np.repeat(np.arange(ids), counts)
    x = mu[y] + rng.multivariate_normal(np.zeros(d), s_eps, len(y))
    return x, y, s_mu, s_eps


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_exact_em_recovers_the_covariances_and_beats_the_paper_update():
    x, y, s_mu, s_eps = draw(0)
    exact = JointBayesian().fit(x, y)
    paper = JointBayesian(update="posterior_mean").fit(x, y)
    # docs/papers.md: exact EM ~12% / 5%, the posterior-mean update ~18% / 14% on such data
    assert rel(exact.s_mu_, s_mu) < 0.2 and rel(exact.s_eps_, s_eps) < 0.1
    assert rel(exact.s_eps_, s_eps) < rel(paper.s_eps_, s_eps)
    # the posterior-mean update is biased low: its within-class variance is smaller
    assert np.trace(paper.s_eps_) < np.trace(exact.s_eps_)


def test_score_is_twice_the_log_likelihood_ratio_up_to_a_constant():
    x, y, _, _ = draw(1, d=4, ids=200)
    jb = JointBayesian(ridge=0.0).fit(x, y)
    s_mu, s_eps = jb.s_mu_, jb.s_eps_
    d = len(s_mu)
    same = np.block([[s_mu + s_eps, s_mu], [s_mu, s_mu + s_eps]])
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(20, d)), rng.normal(size=(20, d))
    xa, xb = a + jb.mean_, b + jb.mean_      # score_pairs centres its inputs
    llr = (multivariate_normal(np.zeros(2 * d), same).logpdf(np.hstack([a, b]))
           - multivariate_normal(np.zeros(d), s_mu + s_eps).logpdf(a)
           - multivariate_normal(np.zeros(d), s_mu + s_eps).logpdf(b))
    offset = jb.score_pairs(xa, xb) - 2 * llr
    np.testing.assert_allclose(offset, offset[0], atol=1e-8)


def test_score_is_symmetric_and_separates_identities():
    x, y, _, _ = draw(3)
    jb = JointBayesian().fit(x[y < 300], y[y < 300])
    test_x, test_y = x[y >= 300], y[y >= 300]
    i, j = np.triu_indices(len(test_x), 1)
    scores = jb.score_pairs(test_x[i], test_x[j])
    np.testing.assert_allclose(scores, jb.score_pairs(test_x[j], test_x[i]))
    same = test_y[i] == test_y[j]
    assert scores[same].mean() > scores[~same].mean()


def test_pca_is_fitted_on_training_data_only():
    x, y, _, _ = draw(4, d=8)
    jb = JointBayesian(n_components=5).fit(x, y)
    assert jb.s_mu_.shape == (5, 5) and jb.A_.shape == (5, 5)
    assert jb.score_pairs(x[:3], x[3:6]).shape == (3,)


@pytest.mark.parametrize("n_components", [8, 12])
def test_pca_to_no_fewer_dimensions_is_skipped(n_components):
    x, y, _, _ = draw(4, d=8)
    jb = JointBayesian(n_components=n_components).fit(x, y)
    plain = JointBayesian().fit(x, y)
    assert jb.pca_ is None and jb.s_mu_.shape == (8, 8)
    np.testing.assert_allclose(jb.score_pairs(x[:5], x[5:10]), plain.score_pairs(x[:5], x[5:10]))


def test_centring_and_pca_come_from_training_data_and_scoring_does_not_refit():
    x, y, _, _ = draw(4, d=8)
    jb = JointBayesian(n_components=5).fit(x, y)
    np.testing.assert_array_equal(jb.mean_, x.mean(0))
    mean, components, pca_mean = jb.mean_.copy(), jb.pca_.components_.copy(), jb.pca_.mean_.copy()
    # test data from elsewhere: shifted, rescaled, another seed
    rng = np.random.default_rng(40)
    a, b = 5 + 3 * rng.normal(size=(50, 8)), -2 + rng.normal(size=(50, 8))
    scores = jb.score_pairs(a, b)
    np.testing.assert_array_equal(jb.mean_, mean)
    np.testing.assert_array_equal(jb.pca_.components_, components)
    np.testing.assert_array_equal(jb.pca_.mean_, pca_mean)
    # the score uses the training projection, written out here
    pa, pb = (a - mean - pca_mean) @ components.T, (b - mean - pca_mean) @ components.T
    expected = [p @ jb.A_ @ p + q @ jb.A_ @ q - 2 * p @ jb.G_ @ q
                for p, q in zip(pa, pb, strict=True)]
    np.testing.assert_allclose(scores, expected, rtol=1e-10, atol=1e-10)


def reference_em(x, y, iterations, ridge, exact):
    """Textbook EM: one explicit inverse per identity, residuals image by image."""
    x = x - x.mean(0)
    ids = np.unique(y)
    d = x.shape[1]
    means = np.array([x[y == i].mean(0) for i in ids])
    s_mu = np.cov(means, rowvar=False, bias=True)
    s_eps = np.cov(x - means[np.searchsorted(ids, y)], rowvar=False, bias=True)
    for _ in range(iterations):
        inv_mu = np.linalg.inv(s_mu + ridge * np.eye(d))
        inv_eps = np.linalg.inv(s_eps + ridge * np.eye(d))
        new_mu, new_eps = np.zeros((d, d)), np.zeros((d, d))
        for i in ids:
            xi = x[y == i]
            p = np.linalg.inv(inv_mu + len(xi) * inv_eps)
            mean = p @ inv_eps @ xi.sum(0)
            new_mu += np.outer(mean, mean) + exact * p
            for row in xi:
                new_eps += np.outer(row - mean, row - mean) + exact * p
        s_mu, s_eps = new_mu / len(ids), new_eps / len(x)
    return s_mu, s_eps


@pytest.mark.parametrize("update", ["exact", "posterior_mean"])
def test_em_equals_the_textbook_per_identity_loop(update):
    x, y, _, _ = draw(6, d=5, ids=60, low=1, high=7)
    with pytest.warns(ConvergenceWarning):
        jb = JointBayesian(update=update, max_iter=4, tol=0.0).fit(x, y)
    s_mu, s_eps = reference_em(x, y, 4, jb.ridge, update == "exact")
    np.testing.assert_allclose(jb.s_mu_, s_mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jb.s_eps_, s_eps, rtol=1e-10, atol=1e-12)


def test_chunked_scoring_equals_one_block():
    x, y, _, _ = draw(7)
    jb = JointBayesian().fit(x, y)
    rng = np.random.default_rng(8)
    i, j = rng.integers(0, len(x), (2, 1001))
    whole = jb.set_params(chunk=10**6).score_pairs(x[i], x[j])
    for chunk in (1, 7, 1000):
        np.testing.assert_allclose(jb.set_params(chunk=chunk).score_pairs(x[i], x[j]), whole,
                                   rtol=1e-12, atol=1e-12)
    assert jb.score_pairs(x[:0], x[:0]).shape == (0,)


def test_convergence_is_reported():
    x, y, _, _ = draw(9)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        jb = JointBayesian(max_iter=1).fit(x, y)
    assert jb.n_iter_ == 1 and not jb.converged_
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        jb = JointBayesian(max_iter=200, tol=1e-6).fit(x, y)
    assert jb.converged_ and 1 < jb.n_iter_ < 200


def test_single_image_identities_are_accepted():
    x, y, _, _ = draw(5, ids=300, low=1, high=6)
    jb = JointBayesian().fit(x, y)
    assert np.all(np.isfinite(jb.A_)) and np.all(np.linalg.eigvalsh(jb.s_eps_) > 0)


def test_mostly_single_image_identities_inform_s_mu_without_nan():
    # LFW-like: 1,600 people with one image, 100 with two to five
    rng = np.random.default_rng(10)
    counts = np.concatenate([np.ones(1600, int), rng.integers(2, 6, 100)])
    x, y, s_mu, s_eps = draw(10, counts=counts)
    jb = JointBayesian(max_iter=500).fit(x, y)
    assert jb.converged_ and np.all(np.isfinite(jb.A_)) and np.all(np.isfinite(jb.G_))
    # S_eps rests on the 100 people with several images; S_mu gains from all 1,700
    multi = counts[y] > 1
    only_multi = JointBayesian(max_iter=500).fit(x[multi], y[multi])
    assert rel(jb.s_eps_, s_eps) < 0.25
    assert rel(jb.s_mu_, s_mu) < 0.5 * rel(only_multi.s_mu_, s_mu)


def test_only_single_image_identities_are_rejected():
    x, y, _, _ = draw(12, ids=50, low=1, high=1)
    with pytest.raises(ValueError, match="S_eps is unidentifiable"):
        JointBayesian().fit(x, y)


def test_unknown_update_rule_is_rejected():
    with pytest.raises(ValueError, match="update must be"):
        JointBayesian(update="fast").fit(np.zeros((4, 2)), [0, 0, 1, 1])
