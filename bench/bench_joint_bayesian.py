"""Joint Bayesian at LFW scale: exact-EM fitting and pair scoring, timed against plain loops.

Data: 13,233 faces of 5,749 identities, 512-d, drawn from the Joint Bayesian model with known
covariances (``S_mu`` and ``S_eps`` with log-spaced spectra in random bases). Images per person
as in LFW: 4,069 people with one image, 1,680 with two or more (9,164 images), their counts a
discrete power law ``P(m) ~ m^-2.32`` on 2..530 (the exponent that gives LFW's mean of 5.45),
the rounding remainder given to the largest.

Fit: :class:`JointBayesian` exact EM for a fixed number of iterations (``tol=0``, so the
expected ConvergenceWarning is silenced); seconds per iteration = (fit with N iterations - fit
with 1) / (N - 1), so setup (centring, S_w, final A and G) is left out, as it is from the
baseline's; ``fit_s`` is the whole N-iteration fit. Baseline: the textbook per-identity
loop (its own inverse of ``S_mu^-1 + m_i S_eps^-1`` and posterior mean per identity,
accumulated), timed over fewer iterations; both must give the same S_mu and S_eps after
those iterations (rtol 1e-8).

Scoring: ``score_pairs`` on 6,000 LFW-style pairs (3,000 same, 3,000 different) against a
per-pair Python loop of ``x1' A x1 + x2' A x2 - 2 x1' G x2`` (scores equal to rtol 1e-10), and
on 10^6 random pairs (float32 inputs, 2 x 2 GB), where ``alloc_mb`` is the peak of what
scoring itself allocates (tracemalloc, which sees NumPy's buffers), beside the inputs.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best_time, parse_args, peak_rss_mb, report  # noqa: E402

from facerepro.evaluation.joint_bayesian import JointBayesian  # noqa: E402

POWER = 2.32  # LFW: 9,164 images of 1,680 people with >= 2 images, mean 5.45
MAX_IMAGES = 530  # LFW's largest identity (George W Bush)


def lfw_like_counts(n_single: int, n_multi: int, multi_images: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Images per identity: ``n_single`` ones, then ``n_multi`` power-law counts >= 2."""
    support = np.arange(2, MAX_IMAGES + 1)
    prob = support ** -POWER
    multi = rng.choice(support, n_multi, p=prob / prob.sum())
    multi[np.argmax(multi)] += multi_images - multi.sum()
    if multi.min() < 2:
        raise ValueError("multi_images is too small for the drawn counts")
    return np.concatenate([np.ones(n_single, int), multi])


def jb_features(counts: np.ndarray, d: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``x = mu_identity + eps`` with ``S_mu`` spectrum 4..0.05 and ``S_eps`` 1..0.1."""
    def factor(top: float, bottom: float) -> np.ndarray:
        basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
        return basis * np.sqrt(np.geomspace(top, bottom, d))   # factor @ factor.T = S

    y = np.repeat(np.arange(len(counts)), counts)
    mu = rng.normal(size=(len(counts), d)) @ factor(4.0, 0.05).T
    return mu[y] + rng.normal(size=(len(y), d)) @ factor(1.0, 0.1).T, y


def loop_em(x: np.ndarray, y: np.ndarray, iterations: int,
            ridge: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Textbook exact EM, one identity at a time; returns S_mu, S_eps, seconds per iteration."""
    x = x - x.mean(0)
    order = np.argsort(y, kind="stable")
    groups = np.split(x[order], np.flatnonzero(np.diff(y[order])) + 1)
    d = x.shape[1]
    means = np.array([g.mean(0) for g in groups])
    s_mu = np.cov(means, rowvar=False, bias=True)
    s_eps = sum(((g - g.mean(0)).T @ (g - g.mean(0)) for g in groups), np.zeros((d, d))) / len(x)
    start = time.perf_counter()
    for _ in range(iterations):
        inv_mu = np.linalg.inv(s_mu + ridge * np.eye(d))
        inv_eps = np.linalg.inv(s_eps + ridge * np.eye(d))
        new_mu, new_eps = np.zeros((d, d)), np.zeros((d, d))
        for g in groups:
            p = np.linalg.inv(inv_mu + len(g) * inv_eps)
            mean = p @ (inv_eps @ g.sum(0))
            new_mu += np.outer(mean, mean) + p
            resid = g - mean
            new_eps += resid.T @ resid + len(g) * p
        s_mu, s_eps = new_mu / len(groups), new_eps / len(x)
    return s_mu, s_eps, (time.perf_counter() - start) / iterations


def loop_scores(jb: JointBayesian, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One pair at a time: ``r = p' A p + q' A q - 2 p' G q`` on the centred features."""
    out = np.empty(len(a))
    for k in range(len(a)):
        p, q = a[k] - jb.mean_, b[k] - jb.mean_
        out[k] = p @ jb.A_ @ p + q @ jb.A_ @ q - 2 * p @ jb.G_ @ q
    return out


def lfw_like_pairs(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n // 2`` same pairs (two distinct images of one person) and ``n // 2`` different."""
    counts = np.bincount(y)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])   # y is sorted: rows per person
    who = rng.choice(np.flatnonzero(counts > 1), n // 2)
    j1 = rng.integers(0, counts[who])
    j2 = (j1 + 1 + rng.integers(0, counts[who] - 1)) % counts[who]
    same = np.stack([first[who] + j1, first[who] + j2], 1)
    draw = rng.integers(0, len(y), (4 * n, 2))
    diff = draw[y[draw[:, 0]] != y[draw[:, 1]]][: n // 2]
    return np.concatenate([same, diff])


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rng = np.random.default_rng(0)
    if args.quick:
        counts, d = lfw_like_counts(180, 80, 440, rng), 16
        fit_iters, loop_iters, n_pairs, n_many = 5, 2, 300, 20_000
    else:
        counts, d = lfw_like_counts(4_069, 1_680, 9_164, rng), 512
        fit_iters, loop_iters, n_pairs, n_many = 20, 1, 6_000, 1_000_000
    x, y = jb_features(counts, d, rng)
    size = f"{len(x)}x{d}, {len(counts)} ids"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)   # tol=0: fixed iterations
        fit_s, jb = best_time(lambda: JointBayesian(max_iter=fit_iters, tol=0.0).fit(x, y),
                              repeat=3)
        setup_s, _ = best_time(lambda: JointBayesian(max_iter=1, tol=0.0).fit(x, y), repeat=3)
        short = JointBayesian(max_iter=loop_iters, tol=0.0).fit(x, y)
    s_mu, s_eps, loop_iter_s = loop_em(x, y, loop_iters, short.ridge)
    fit_agree = bool(np.allclose(short.s_mu_, s_mu, rtol=1e-8, atol=1e-10)
                     and np.allclose(short.s_eps_, s_eps, rtol=1e-8, atol=1e-10))
    iter_s = (fit_s - setup_s) / (fit_iters - 1)
    rows = [{"task": "EM iteration (exact)", "size": size, "unit": "s/iter",
             "fast": iter_s, "baseline": loop_iter_s, "speedup": loop_iter_s / iter_s,
             "agree": fit_agree, "iters": f"{jb.n_iter_} / {loop_iters}", "fit_s": fit_s}]

    pairs = lfw_like_pairs(y, n_pairs, rng)
    a, b = x[pairs[:, 0]], x[pairs[:, 1]]
    fast_s, fast = best_time(lambda: jb.score_pairs(a, b))
    loop_s, slow = best_time(lambda: loop_scores(jb, a, b), repeat=1)
    score_agree = bool(np.allclose(fast, slow, rtol=1e-10, atol=1e-10))
    rows.append({"task": "score pairs", "size": f"{len(pairs)} pairs", "unit": "pairs/s",
                 "fast": len(pairs) / fast_s, "baseline": len(pairs) / loop_s,
                 "speedup": loop_s / fast_s, "agree": score_agree})

    many = rng.integers(0, len(x), (n_many, 2))
    x32 = x.astype(np.float32)
    a, b = x32[many[:, 0]], x32[many[:, 1]]
    tracemalloc.start()
    many_s, _ = best_time(lambda: jb.score_pairs(a, b), repeat=1)
    alloc_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rows.append({"task": "score pairs", "size": f"{n_many} pairs (float32 in)",
                 "unit": "pairs/s", "fast": n_many / many_s, "alloc_mb": alloc_mb,
                 "peak_rss_mb": peak_rss_mb()})
    report("joint_bayesian", rows, args.out)
    if not (fit_agree and score_agree):
        raise SystemExit("Joint Bayesian disagrees with its per-identity / per-pair baseline")


if __name__ == "__main__":
    main()
