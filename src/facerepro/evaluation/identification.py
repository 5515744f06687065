"""Face identification on feature arrays: closed set (CMC), open set (DIR at FAR), and
MegaFace-style identification and verification against a large distractor set.

Scores are cosine similarities (rows L2-normalised, then inner products); higher is more alike.

LFW identification protocol of Best-Rowden, Han, Otto, Klare and Jain, "Unconstrained face
recognition: identifying a person of interest from a media collection", IEEE TIFS 9(12), 2014,
as reported by DeepID2+ (Sun, Wang, Tang, CVPR 2015). Its split files are not published, so
the splits are ours, drawn from ``seed``; sizes default to the ones usually cited.

* Gallery identities. Identities are put in a random order and the gallery takes the first
  ``n_gallery`` of them, skipping an identity only when, with it, no choice among the later
  identities could complete a split of the requested sizes. So ``ValueError`` (with the
  requested and the available numbers) is raised only when no split of those sizes exists,
  and when the sizes do not bind, the gallery identities are a uniform random sample.
* Closed set (4,249 gallery identities, 3,143 probes): any identity may enter the gallery with
  one random image; the probes are drawn uniformly, without replacement, from the other
  images of the gallery identities.
* Open set (596 gallery identities, 596 genuine and 9,491 impostor probes): gallery
  identities have >= 2 images and enter with one random image; ``n_genuine`` of them, drawn
  at random, give one other random image each as a genuine probe; impostor probes are drawn
  uniformly, without replacement, from all images of the identities not in the gallery.

Closed-set rank. For a probe, let ``s*`` be its best score over the gallery images of its own
identity; its rank is 1 + the number of gallery images of other identities scoring ``>= s*``
(a tie counts against the true match). ``CMC(r)`` is the fraction of probes of rank ``<= r``;
rank-1 is ``CMC(1)``.

Threshold at FAR ``f`` from ``n`` impostor scores: ``k = floor(f n)`` false accepts are
allowed (``f`` read as the decimal it prints as: 0.29 of 100 allows 29, not the 28 that
binary floating point gives), and
``t`` is the smallest float above the (k+1)-th largest impostor score, so ``score >= t`` means
``score >`` that value: the lowest threshold that accepts at most ``k`` impostors. Ties and the
floor can make the realised FAR lower than ``f``; both it and the resolution ``1/n`` are
reported.

Open-set DIR at FAR ``f``: the impostor scores are the impostor probes' maximum gallery scores;
DIR is the fraction of genuine probes of rank 1 (ties against, as above) whose ``s* >= t``.

MegaFace challenge 1 (Kemelmacher-Shlizerman, Seitz, Miller, Brossard, "The MegaFace
benchmark: 1 million faces for recognition at scale", CVPR 2016), as reported by SphereFace
and CLMLE. Identification: for every ordered pair (p, g) of distinct probe images of one
identity, the gallery is g plus all distractors; the pair is a rank-1 hit iff
``score(p, g) > max_d score(p, d)`` (ties are misses), so one exact top-1 distractor search
per probe serves every pair. Verification: genuine scores are all unordered same-identity
probe pairs, impostor scores all probe x distractor pairs (``n = P D``); TAR at FAR ``f`` uses
the threshold rule above, which needs only the ``k + 1`` largest impostor scores: an exact
top-``min(D, k + 1)`` search per probe, merged over batches of probes. FAR ``f`` is resolved
when it allows a false accept (``f n >= 1``); the smallest FAR the pairs resolve is ``1 / n``
(one false accept), at which TAR is always reported too. The challenge's curve, rank-1 against
the number of distractors, scores the same pairs against the first ``d`` distractors for each
``d`` of the curve (nested sets: the caller orders the distractors), one exact top-1 search of
``d`` distractors per probe each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from facerepro.evaluation.verification import unit_rows


@dataclass(frozen=True, eq=False)
class ClosedSetSplit:
    """Rows into the identity array: one gallery image per gallery identity, and the probes."""

    gallery: np.ndarray
    probes: np.ndarray


@dataclass(frozen=True, eq=False)
class OpenSetSplit:
    """Rows into the identity array: gallery, genuine probes, impostor probes."""

    gallery: np.ndarray
    genuine: np.ndarray
    impostor: np.ndarray


def closed_set_split(identities: np.ndarray, n_gallery: int = 4249, n_probes: int = 3143,
                     seed: int = 0) -> ClosedSetSplit:
    """Closed-set split (see the module docstring); raises ValueError when none exists."""
    _check_positive(n_gallery=n_gallery, n_probes=n_probes)
    codes, counts = np.unique(np.asarray(identities), return_inverse=True, return_counts=True)[1:]
    if n_gallery > len(counts):
        raise ValueError(f"closed-set split: n_gallery={n_gallery} gallery identities requested, "
                         f"the data has {len(counts)} identities; lower n_gallery")
    # Capacity = images beyond the gallery one; the gallery must hold >= n_probes of them.
    capacity = counts - 1
    most = int(np.sort(capacity)[::-1][:n_gallery].sum())
    if n_probes > most:
        raise ValueError(f"closed-set split: n_probes={n_probes} probes requested, but "
                         f"{n_gallery} gallery identities have at most {most} images besides "
                         f"their gallery image; lower n_probes (or raise n_gallery)")
    rng = np.random.default_rng(seed)
    gallery_ids = _first_feasible(rng.permutation(len(counts)), -capacity, n_gallery, -n_probes)
    first, _ = _one_random_image_each(rng, codes)
    candidates = np.isin(codes, gallery_ids)
    candidates[first] = False
    pool = np.flatnonzero(candidates)
    return ClosedSetSplit(gallery=np.sort(first[gallery_ids]),
                          probes=np.sort(rng.choice(pool, n_probes, replace=False)))


def open_set_split(identities: np.ndarray, n_gallery: int = 596, n_genuine: int = 596,
                   n_impostor: int = 9491, seed: int = 0) -> OpenSetSplit:
    """Open-set split (see the module docstring); raises ValueError when none exists."""
    _check_positive(n_gallery=n_gallery, n_genuine=n_genuine, n_impostor=n_impostor)
    codes, counts = np.unique(np.asarray(identities), return_inverse=True, return_counts=True)[1:]
    multi = np.flatnonzero(counts >= 2)
    if n_gallery > len(multi):
        raise ValueError(f"open-set split: n_gallery={n_gallery} gallery identities requested, "
                         f"the data has {len(multi)} identities with >= 2 images; lower n_gallery")
    if n_genuine > n_gallery:
        raise ValueError(f"open-set split: one genuine probe per gallery identity, so "
                         f"n_genuine={n_genuine} must be <= n_gallery={n_gallery}")
    # The gallery identities' images cannot be impostors: their total is capped.
    budget = len(codes) - n_impostor
    most = len(codes) - int(np.sort(counts[multi])[:n_gallery].sum())
    if n_impostor > most:
        raise ValueError(f"open-set split: n_impostor={n_impostor} impostor probes requested, "
                         f"but with {n_gallery} gallery identities at most {most} images lie "
                         f"outside the gallery identities; lower n_impostor or n_gallery")
    rng = np.random.default_rng(seed)
    gallery_ids = _first_feasible(rng.permutation(multi), counts, n_gallery, budget)
    first, second = _one_random_image_each(rng, codes)
    genuine_ids = rng.choice(gallery_ids, n_genuine, replace=False)
    pool = np.flatnonzero(~np.isin(codes, gallery_ids))
    return OpenSetSplit(gallery=np.sort(first[gallery_ids]),
                        genuine=np.sort(second[genuine_ids]),
                        impostor=np.sort(rng.choice(pool, n_impostor, replace=False)))


def _check_positive(**sizes: int) -> None:
    for key, size in sizes.items():
        if size < 1:
            raise ValueError(f"split sizes must be >= 1, got {key}={size}")


def _first_feasible(order: np.ndarray, weight: np.ndarray, size: int, bound: int) -> np.ndarray:
    """The first ``size`` items of ``order`` under ``sum(weight) <= bound``, greedily.

    An item is taken iff it plus the lightest items after it can still complete the set, so
    the greedy fails only when no feasible set exists (the callers check that first).
    """
    taken: list[int] = []
    for pos, item in enumerate(order):
        need = size - len(taken) - 1
        lightest = np.partition(weight[order[pos + 1:]], need - 1)[:need] if need else []
        if weight[item] + np.sum(lightest) <= bound:
            taken.append(item)
            bound -= weight[item]
            if not need:
                break
    return np.array(taken, dtype=int)


def _one_random_image_each(rng: np.random.Generator,
                           codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per identity code, a random image row and a second, different one (-1 if none)."""
    perm = rng.permutation(len(codes))
    _, at = np.unique(codes[perm], return_index=True)
    first = perm[at]
    rest = np.delete(perm, at)
    present, at = np.unique(codes[rest], return_index=True)
    second = np.full(len(first), -1)
    second[present] = rest[at]
    return first, second


def _true_match_rank(similarity: np.ndarray, probe_ids: np.ndarray,
                     gallery_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each probe's rank (ties against the true match) and its best true-match score."""
    same = np.asarray(probe_ids)[:, None] == np.asarray(gallery_ids)[None, :]
    orphans = int(np.count_nonzero(~same.any(axis=1)))
    if orphans:
        raise ValueError(f"{orphans} probes have no gallery image of their identity; closed-set "
                         f"ranks need every probe identity in the gallery")
    true = np.where(same, similarity, -np.inf).max(axis=1)
    rank = 1 + np.count_nonzero((similarity >= true[:, None]) & ~same, axis=1)
    return rank, true


def cmc(similarity: np.ndarray, probe_ids: np.ndarray, gallery_ids: np.ndarray,
        max_rank: int = 20) -> np.ndarray:
    """CMC(1..max_rank) from a (probes, gallery) score matrix; a tie counts against the match.

    A probe's rank is 1 + the number of gallery images of other identities scoring at least
    its best score over the gallery images of its own identity.
    """
    rank, _ = _true_match_rank(similarity, probe_ids, gallery_ids)
    return np.cumsum(np.bincount(rank, minlength=max_rank + 1)[1:max_rank + 1]) / len(rank)


def _allowed_false_accepts(far: float, n: int) -> int:
    if not 0 < far < 1:
        raise ValueError(f"FAR must lie in (0, 1), got {far}")
    # Read far as the decimal it prints as: float(0.29) * 100 is 28.999..., not 29.
    return int(Fraction(str(float(far))) * n)


def _threshold_at_far(top: np.ndarray, n: int, far: float) -> tuple[np.float64, int]:
    """(threshold, false accepts) at ``far`` from the largest impostor scores, descending.

    ``top`` holds at least the ``k + 1`` largest of the ``n`` impostor scores. The threshold is
    a numpy float64 so that comparing float32 scores with it happens in float64, where it lies
    strictly above the score it was made from (as a Python float it would be cast to float32).
    """
    return _threshold_above(top, _allowed_false_accepts(far, n))


def _threshold_above(top: np.ndarray, k: int) -> tuple[np.float64, int]:
    """(threshold, false accepts) accepting at most ``k`` of the impostor scores ``top``
    (descending, at least ``k + 1`` of them): the smallest float64 above ``top[k]``."""
    return np.nextafter(np.float64(top[k]), np.inf), int(np.count_nonzero(top[:k] > top[k]))


def dir_at_far(genuine_similarity: np.ndarray, genuine_ids: np.ndarray, gallery_ids: np.ndarray,
               impostor_similarity: np.ndarray,
               fars: Sequence[float] = (1e-2, 1e-3)) -> list[dict]:
    """Open-set detection and identification rate at each FAR (rule in the module docstring).

    ``genuine_similarity`` is (genuine probes, gallery), ``impostor_similarity`` (impostor
    probes, gallery).
    """
    rank, true = _true_match_rank(genuine_similarity, genuine_ids, gallery_ids)
    impostor_max = np.sort(np.max(impostor_similarity, axis=1))[::-1]
    n = len(impostor_max)
    rows = []
    for far in fars:
        threshold, accepted = _threshold_at_far(impostor_max, n, far)
        rows.append({"far": float(far),
                     "dir": float(np.mean((rank == 1) & (true >= threshold))),
                     "threshold": float(threshold), "realised_far": accepted / n,
                     "far_resolution": 1 / n})
    return rows


def _cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) cosine similarities, in float64."""
    return unit_rows(np.asarray(a, float)) @ unit_rows(np.asarray(b, float)).T


def closed_set_identification(features: np.ndarray, identities: np.ndarray,
                              split: ClosedSetSplit, max_rank: int = 20) -> dict:
    """Rank-1 and CMC of a closed-set split of these features."""
    identities = np.asarray(identities)
    similarity = _cosine_similarity(features[split.probes], features[split.gallery])
    curve = cmc(similarity, identities[split.probes], identities[split.gallery], max_rank)
    return {"rank1": float(curve[0]), "cmc": curve.tolist(),
            "gallery": len(split.gallery), "probes": len(split.probes)}


def open_set_identification(features: np.ndarray, identities: np.ndarray, split: OpenSetSplit,
                            fars: Sequence[float] = (1e-2, 1e-3)) -> dict:
    """DIR at each FAR of an open-set split of these features."""
    identities = np.asarray(identities)
    gallery = features[split.gallery]
    genuine = _cosine_similarity(features[split.genuine], gallery)
    impostor = _cosine_similarity(features[split.impostor], gallery)
    return {"dir_at_far": dir_at_far(genuine, identities[split.genuine],
                                     identities[split.gallery], impostor, fars),
            "gallery": len(split.gallery), "genuine_probes": len(split.genuine),
            "impostor_probes": len(split.impostor)}


def _unit_float32(x: np.ndarray) -> np.ndarray:
    """A C-contiguous float32 copy with unit rows (faiss needs float32)."""
    import faiss  # only MegaFace searches with it: LFW's kinds never load it

    x = np.array(x, dtype=np.float32, order="C", copy=True)
    faiss.normalize_L2(x)
    return x


def _same_identity_pairs(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (i, j) of all unordered pairs of distinct images of one identity."""
    codes = np.unique(ids, return_inverse=True)[1]
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.cumsum(sizes) - sizes
    pairs = [np.triu_indices(size, 1) for size in sizes]
    first = np.concatenate([start + i for start, (i, _) in zip(starts, pairs, strict=True)])
    second = np.concatenate([start + j for start, (_, j) in zip(starts, pairs, strict=True)])
    return order[first], order[second]


def distractor_counts(n: int) -> list[int]:
    """The points of MegaFace's distractor curve up to ``n``: 10, 100, ... below ``n``, then
    ``n`` itself (the challenge's 10^1 .. 10^6)."""
    if n < 1:
        raise ValueError(f"MegaFace identification needs distractors, got {n}")
    counts = [10 ** k for k in range(1, len(str(n))) if 10 ** k < n]
    return [*counts, n]


def _best_distractor(probes: np.ndarray, distractors: np.ndarray,
                     batch_size: int) -> np.ndarray:
    """Each probe's highest inner product with ``distractors`` (exact faiss search)."""
    import faiss

    top1 = np.empty(len(probes), np.float32)
    for start in range(0, len(probes), batch_size):
        scores, _ = faiss.knn(probes[start:start + batch_size], distractors, 1,
                              metric=faiss.METRIC_INNER_PRODUCT)
        top1[start:start + batch_size] = scores[:, 0]
    return top1


def megaface_identification(probe_features: np.ndarray, probe_ids: np.ndarray,
                            distractor_features: np.ndarray, fars: Sequence[float] = (1e-6,),
                            counts: Sequence[int] = (), batch_size: int = 256) -> dict:
    """MegaFace challenge 1 rank-1 and verification TAR at each FAR (module docstring).

    ``counts`` are the points of the rank-1 curve, each against the first ``d`` distractors
    (the full set is always scored). Besides the summaries the result holds each probe pair
    (rows into the probes): ``pairs`` (unordered same-identity pairs, the genuine scores'
    order), ``rank1_hits`` (0/1 per ordered pair: each unordered pair as (first, second), then
    all as (second, first)) and ``accepted`` per verification row (0/1 per unordered pair).

    The distractors are searched exactly (faiss brute-force inner product) ``batch_size``
    probes at a time; memory beyond one float32 unit-row copy of the distractors is about
    ``12 * batch_size * min(D, k + 1)`` bytes, ``k`` the false accepts the largest FAR allows.
    """
    import faiss

    probes = _unit_float32(probe_features)
    distractors = _unit_float32(distractor_features)
    n_probes, n_distractors = len(probes), len(distractors)
    bad = [d for d in counts if not 1 <= d <= n_distractors]
    if bad:
        raise ValueError(f"distractor counts {bad} are outside 1..{n_distractors}, the number "
                         f"of distractors")
    n_impostor = n_probes * n_distractors
    # At least two: the smallest resolved FAR allows one false accept.
    keep = max([1, *(_allowed_false_accepts(far, n_impostor) for far in fars)]) + 1
    depth = min(n_distractors, keep)
    top1 = np.empty(n_probes, np.float32)
    top = np.empty(0, np.float32)
    for start in range(0, n_probes, batch_size):
        scores, _ = faiss.knn(probes[start:start + batch_size], distractors, depth,
                              metric=faiss.METRIC_INNER_PRODUCT)
        top1[start:start + batch_size] = scores[:, 0]
        top = np.concatenate([top, scores.ravel()])
        if len(top) > keep:
            top = np.partition(top, -keep)[-keep:]
    top = np.sort(top)[::-1]

    first, second = _same_identity_pairs(np.asarray(probe_ids))
    if not len(first):
        raise ValueError("MegaFace identification needs probe identities with >= 2 images")
    genuine = np.einsum("ij,ij->i", probes[first], probes[second])

    def hits(best: np.ndarray) -> np.ndarray:
        # Each unordered pair is two ordered (probe, target) pairs, one per direction.
        return np.concatenate([genuine > best[first], genuine > best[second]])

    rank1_hits = hits(top1)
    curve = [float(np.mean(rank1_hits if d == n_distractors else
                           hits(_best_distractor(probes, distractors[:d], batch_size))))
             for d in counts]

    def row(far: float, k: int) -> dict:
        threshold, accepted = _threshold_above(top, k)
        accepts = genuine >= threshold
        return {"far": float(far), "tar": float(np.mean(accepts)), "accepted": accepts,
                "threshold": float(threshold), "realised_far": accepted / n_impostor,
                "far_resolution": 1 / n_impostor, "resolved": k >= 1}

    verification = [row(far, _allowed_false_accepts(far, n_impostor)) for far in fars]
    smallest = row(1 / n_impostor, 1) if len(top) > 1 else None
    return {"rank1": float(np.mean(rank1_hits)), "rank1_pairs": 2 * len(genuine),
            "rank1_hits": rank1_hits, "pairs": (first, second),
            "curve": {"distractors": list(counts), "rank1": curve},
            "genuine_pairs": len(genuine), "impostor_pairs": n_impostor,
            "probes": n_probes, "probe_identities": len(np.unique(probe_ids)),
            "distractors": n_distractors, "verification": verification,
            "smallest_far": smallest}
