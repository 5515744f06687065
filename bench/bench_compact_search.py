"""Compact-code search (Fan et al., ACM MM 2014): recall against bins visited, timed.

Data: random codes with identity structure at LFW scale (13,233 faces, 5,749 identities, 4,069
of them with one image, a long tail of people with many), each face its identity's base code
with noise: 32x1 flips each bit with probability 0.06, 8x4 adds a rounded N(0, 1) to each
value (clipped to [0, 16)). Queries: faces of people with more than two images.

Target: :func:`search_recall_curve` (chunked distance matrix + per-query histograms, bin
counts by a vectorised dynamic programme). Baseline: per query, one distance row, a full sort,
then a Python loop over radii (counting by binary search) and a per-query ``np.convolve``
chain for the bin counts. Both run on the same query subset and must agree to 1e-12.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best_time, parse_args, peak_rss_mb, report  # noqa: E402

from facerepro.evaluation.compact_search import (  # noqa: E402
    query_indices,
    recall_at_bins_fraction,
    search_recall_curve,
)

CONFIGS = {"32x1": (32, 1), "8x4": (8, 4)}
SHOW_RECALL = 0.99  # the printed curve stops at the first radius reaching this recall


def lfw_like_identities(n_faces: int, n_ids: int, n_single: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Identity per face: ``n_single`` people with one image, the rest long-tailed, >= 2."""
    n_multi = n_ids - n_single
    tail = rng.pareto(1.2, n_multi)
    extra = np.floor(tail / tail.sum() * (n_faces - n_single - 2 * n_multi)).astype(int)
    sizes = np.concatenate([np.ones(n_single, int), 2 + extra])
    sizes[np.argmax(sizes)] += n_faces - sizes.sum()  # rounding remainder to the largest
    return np.repeat(np.arange(n_ids), sizes)


def noisy_codes(identities: np.ndarray, n: int, bits: int,
                rng: np.random.Generator) -> np.ndarray:
    base = rng.integers(0, 2**bits, (identities.max() + 1, n))[identities]
    if bits == 1:
        return base ^ (rng.random(base.shape) < 0.06)
    return np.clip(base + np.rint(rng.normal(0, 1, base.shape)).astype(int), 0, 2**bits - 1)


def naive_curve(codes: np.ndarray, identities: np.ndarray, bits: int,
                queries: np.ndarray) -> np.ndarray:
    """(radius, [recall, bins_visited, faces_fraction]) summed per query, then averaged."""
    n_faces, n = codes.shape
    top = 2**bits - 1
    radius = n * top
    totals = np.zeros((radius + 1, 3))
    for q in queries:
        dist = np.abs(codes - codes[q]).sum(axis=1)
        others = np.arange(n_faces) != q
        order = np.argsort(dist[others])
        sorted_dist = dist[others][order]
        same = (identities[others] == identities[q])[order]
        same_dist = sorted_dist[same]
        per_value = [np.bincount(np.abs(np.arange(top + 1) - v)) for v in codes[q]]
        bins = np.array([1])
        for poly in per_value:
            bins = np.convolve(bins, poly)
        for r in range(radius + 1):
            totals[r, 0] += np.searchsorted(same_dist, r, side="right") / len(same_dist)
            totals[r, 1] += bins[: r + 1].sum()
            totals[r, 2] += np.searchsorted(sorted_dist, r, side="right") / (n_faces - 1)
    return totals / len(queries)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rng = np.random.default_rng(0)
    if args.quick:
        identities = lfw_like_identities(600, 260, 180, rng)
        subset = 40
    else:
        identities = lfw_like_identities(13_233, 5_749, 4_069, rng)
        subset = 300
    queries = query_indices(identities, 3)
    pick = np.sort(rng.choice(queries, min(subset, len(queries)), replace=False))
    rows, curve_rows = [], []
    for name, (n, bits) in CONFIGS.items():
        codes = noisy_codes(identities, n, bits, rng)
        fast_s, fast = best_time(lambda c=codes, b=bits: search_recall_curve(
            c, identities, b, queries=pick))
        naive_s, naive = best_time(lambda c=codes, b=bits: naive_curve(
            c, identities, b, pick), repeat=1)
        agree = bool(np.allclose(
            fast[["recall", "bins_visited", "faces_fraction"]].to_numpy(), naive,
            rtol=1e-12, atol=1e-12))
        full_s, curve = best_time(lambda c=codes, b=bits: search_recall_curve(
            c, identities, b), repeat=1)
        rows.append({
            "code": name, "faces": len(identities), "queries": curve.attrs["n_queries"],
            "subset": len(pick), "naive_s": naive_s, "fast_s": fast_s,
            "speedup": naive_s / fast_s, "agree": agree, "full_curve_s": full_s,
            "recall@1e-3_bins": recall_at_bins_fraction(curve, 1e-3),
            "recall@1e-6_bins": recall_at_bins_fraction(curve, 1e-6),
        })
        last = int(np.argmax(curve["recall"].to_numpy() >= SHOW_RECALL))
        curve_rows += [{"code": name, **row} for row in
                       curve.iloc[: last + 1].to_dict(orient="records")]
        if not agree:
            raise SystemExit(f"{name}: fast and naive curves disagree")
    rows[-1]["peak_rss_mb"] = peak_rss_mb()
    report("compact_search", rows, args.out)
    report("compact_search_curve", curve_rows,
           args.out.with_name(args.out.stem + "_curve.json") if args.out else None)


if __name__ == "__main__":
    main()
