"""Images per identity, pairs, splits: cheap, no rendering."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facerepro.data.synth.attributes import _NORMAL
from facerepro.data.synth.config import SynthConfig
from facerepro.data.synth.streams import _STREAM_LAYOUT, _rng


def _quantile_levels(n: int) -> np.ndarray:
    """Evenly spaced levels in (0, 1): counts taken at these quantiles have the distribution's
    mean and tail even for a few hundred identities, which independent draws would not."""
    return (np.arange(n) + 0.5) / n


def casia_image_counts(cfg: SynthConfig) -> np.ndarray:
    """Images per CASIA identity (in identity order): a log-normal rounded and clipped to
    [min_images, max_images], its location solved so the counts average ``mean_images``."""
    part = cfg.casia
    z = np.array([_NORMAL.inv_cdf(u) for u in _quantile_levels(part.identities)])

    def counts(mu: float) -> np.ndarray:
        return np.clip(np.rint(np.exp(mu + part.log_sigma * z)), part.min_images,
                       part.max_images)

    lo = math.log(part.min_images) - 6 * part.log_sigma
    hi = math.log(part.max_images) + 6 * part.log_sigma
    for _ in range(60):   # the mean grows with mu: bisect
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if counts(mid).mean() < part.mean_images else (lo, mid)
    order = _rng(cfg.seed, "casia", _STREAM_LAYOUT).permutation(part.identities)
    return counts(hi)[order].astype(int)


_LFW_POWER = 2.2   # P(k images) ~ k^-2.2 for k >= 2: LFW has 779 / 291 / 187 people with 2 / 3 / 4


def lfw_image_counts(cfg: SynthConfig) -> np.ndarray:
    """Images per LFW identity (in identity order): one image for ``1 - multi_fraction`` of
    them, a power law on [2, max_images] for the rest."""
    part = cfg.lfw
    k = np.arange(2, part.max_images + 1)
    p = k ** -_LFW_POWER
    cdf = (1 - part.multi_fraction) + part.multi_fraction * np.cumsum(p / p.sum())
    levels = _quantile_levels(part.identities)
    multi = k[np.minimum(np.searchsorted(cdf, levels), len(k) - 1)]
    counts = np.where(levels < 1 - part.multi_fraction, 1, multi)
    return counts[_rng(cfg.seed, "lfw", _STREAM_LAYOUT).permutation(part.identities)]


@dataclass(frozen=True)
class LfwLayout:
    """LFW identities, their image counts and the pairs of pairs.txt (identity indices are
    0-based, image numbers 1-based as in the file)."""

    names: tuple[str, ...]
    counts: np.ndarray
    folds: tuple[tuple[int, ...], ...]                         # identities of each fold
    same: tuple[tuple[tuple[int, int, int], ...], ...]         # per fold: (id, i, j)
    diff: tuple[tuple[tuple[int, int, int, int], ...], ...]    # per fold: (id1, i, id2, j)

    def identities_in_pairs(self) -> list[int]:
        used = {p[0] for fold in self.same for p in fold}
        used |= {i for fold in self.diff for p in fold for i in (p[0], p[2])}
        return sorted(used)


def lfw_layout(cfg: SynthConfig) -> LfwLayout:
    """Identities, image counts, identity-disjoint folds and pairs of the LFW part.

    Raises ValueError when a fold cannot hold ``pairs_per_fold`` distinct same (or different)
    pairs.
    """
    part = cfg.lfw
    counts = lfw_image_counts(cfg)
    names = tuple(f"Synth_Person_{i + 1:04d}" for i in range(part.identities))
    rng = _rng(cfg.seed, "lfw", _STREAM_LAYOUT, 1)
    # Deal the multi-image identities largest first in snake order, so every fold can make a
    # similar number of same pairs; then the single-image ones.
    multi = sorted(np.flatnonzero(counts > 1), key=lambda i: -counts[i])
    single = rng.permutation(np.flatnonzero(counts == 1)).tolist()
    folds: list[list[int]] = [[] for _ in range(part.folds)]
    for rank, i in enumerate(multi):
        lap, pos = divmod(rank, part.folds)
        folds[pos if lap % 2 == 0 else part.folds - 1 - pos].append(int(i))
    for rank, i in enumerate(single):
        folds[rank % part.folds].append(int(i))

    same, diff = [], []
    for number, members in enumerate(folds, start=1):
        same.append(_same_pairs(rng, counts, members, part.pairs_per_fold, number))
        diff.append(_diff_pairs(rng, counts, members, part.pairs_per_fold, number))
    return LfwLayout(names, counts, tuple(tuple(sorted(f)) for f in folds), tuple(same),
                     tuple(diff))


_LFW_FIX = "raise lfw.identities or lfw.multi_fraction, or lower lfw.pairs_per_fold"


def _same_pairs(rng: np.random.Generator, counts: np.ndarray, members: list[int], wanted: int,
                fold: int, part: str = "lfw", fix: str = _LFW_FIX
                ) -> tuple[tuple[int, int, int], ...]:
    people = [i for i in members if counts[i] > 1]
    possible = sum(counts[i] * (counts[i] - 1) // 2 for i in people)
    if possible < wanted:
        raise ValueError(
            f"SynthFaces {part} part: fold {fold} has {len(people)} identities with >= 2 "
            f"images, {possible} possible same pairs, but {part}.pairs_per_fold = {wanted}; "
            f"{fix}")
    # One pair per person per round, so a few people with many images do not fill the fold.
    queues = []
    for i in rng.permutation(people):
        n = counts[i]
        combos = [(int(i), a, b) for a in range(1, n + 1) for b in range(a + 1, n + 1)]
        queues.append([combos[k] for k in rng.permutation(len(combos))])
    rounds = (queue[r] for r in range(max(map(len, queues))) for queue in queues
              if r < len(queue))
    return tuple(sorted(next(rounds) for _ in range(wanted)))


def _diff_pairs(rng: np.random.Generator, counts: np.ndarray, members: list[int], wanted: int,
                fold: int, part: str = "lfw") -> tuple[tuple[int, int, int, int], ...]:
    sizes = counts[members]
    possible = (sizes.sum() ** 2 - (sizes**2).sum()) // 2
    if possible < wanted:
        raise ValueError(
            f"SynthFaces {part} part: fold {fold} allows only {possible} different pairs but "
            f"{part}.pairs_per_fold = {wanted}; raise {part}.identities or lower "
            f"{part}.pairs_per_fold")
    if possible < 20 * wanted:   # few candidates: enumerate them rather than retry draws
        combos = [(a, i, b, j) for x, a in enumerate(members) for b in members[x + 1:]
                  for i in range(1, counts[a] + 1) for j in range(1, counts[b] + 1)]
        picked = {tuple(int(v) for v in combos[k])
                  for k in rng.choice(len(combos), wanted, replace=False)}
    else:
        picked = set()
        while len(picked) < wanted:
            a, b = sorted(rng.choice(members, 2, replace=False))
            picked.add((int(a), int(rng.integers(1, counts[a] + 1)), int(b),
                        int(rng.integers(1, counts[b] + 1))))
    return tuple(sorted(picked))


def pairs_text(layout: LfwLayout) -> str:
    """pairs.txt in LFW's format: ``folds<TAB>pairs_per_fold``, then per fold its same pairs
    (``name i j``) and its different pairs (``name1 i name2 j``), tab-separated."""
    per_fold = len(layout.same[0])
    lines = [f"{len(layout.folds)}\t{per_fold}"]
    names = layout.names
    for same, diff in zip(layout.same, layout.diff, strict=True):
        lines += [f"{names[p]}\t{i}\t{j}" for p, i, j in same]
        lines += [f"{names[a]}\t{i}\t{names[b]}\t{j}" for a, i, b, j in diff]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class YtfLayout:
    """YTF identities, their videos and the pairs of splits.txt (identity indices 0-based,
    video numbers 0-based as YTF's folder names)."""

    names: tuple[str, ...]
    videos: np.ndarray                                         # videos per identity
    folds: tuple[tuple[int, ...], ...]                         # identities of each fold
    same: tuple[tuple[tuple[int, int, int], ...], ...]         # per fold: (id, v1, v2)
    diff: tuple[tuple[tuple[int, int, int, int], ...], ...]    # per fold: (id1, v1, id2, v2)


def ytf_layout(cfg: SynthConfig) -> YtfLayout:
    """Identities, videos per identity, identity-disjoint folds and the video pairs of the
    YouTube Faces part (YTF's splits are subject-disjoint too).

    Raises ValueError when a fold cannot hold ``pairs_per_fold`` distinct same (or different)
    video pairs.
    """
    part = cfg.ytf
    rng = _rng(cfg.seed, "ytf", _STREAM_LAYOUT)
    videos = rng.integers(part.min_videos, part.max_videos + 1, part.identities)
    names = tuple(f"Synth_Ytf_{i + 1:04d}" for i in range(part.identities))
    order = rng.permutation(part.identities)
    folds = [sorted(int(i) for i in order[k::part.folds]) for k in range(part.folds)]
    fix = "raise ytf.identities or ytf.max_videos, or lower ytf.pairs_per_fold"
    same, diff = [], []
    for number, members in enumerate(folds, start=1):
        # the pair helpers number images from 1; YTF numbers videos from 0
        same.append(tuple((i, a - 1, b - 1) for i, a, b in _same_pairs(
            rng, videos, members, part.pairs_per_fold, number, "ytf", fix)))
        diff.append(tuple((i, a - 1, j, b - 1) for i, a, j, b in _diff_pairs(
            rng, videos, members, part.pairs_per_fold, number, "ytf")))
    return YtfLayout(names, videos, tuple(tuple(f) for f in folds), tuple(same), tuple(diff))


YTF_SPLITS_HEADER = "split number, first name, second name, is same"


def splits_text(layout: YtfLayout) -> str:
    """splits.txt in YTF's CSV format: per fold (``split number`` from 1) its same-person
    video pairs, then its different-person pairs, videos named ``<Person>/<video>``."""
    lines = [YTF_SPLITS_HEADER]
    names = layout.names
    for number, (same, diff) in enumerate(zip(layout.same, layout.diff, strict=True), start=1):
        lines += [f"{number}, {names[p]}/{a}, {names[p]}/{b}, 1" for p, a, b in same]
        lines += [f"{number}, {names[p]}/{a}, {names[q]}/{b}, 0" for p, a, q, b in diff]
    return "\n".join(lines) + "\n"


def casia_identities(cfg: SynthConfig, lfw: LfwLayout | None = None
                     ) -> list[tuple[str, str, int]]:
    """(name, part of its identity stream, index in it) per CASIA identity. The first
    ``casia.overlap`` are LFW people from pairs.txt: same name, same face, other images."""
    overlap = cfg.casia.overlap
    shared: list[int] = []
    if overlap:
        lfw = lfw or lfw_layout(cfg)
        shared = lfw.identities_in_pairs()[:overlap]
        if len(shared) < overlap:
            raise ValueError(f"SynthFaces config: casia.overlap = {overlap} but only "
                             f"{len(shared)} LFW identities are in pairs.txt")
    people = [(lfw.names[j], "lfw", j) for j in shared]
    people += [(f"Synth_Casia_{i + 1:05d}", "casia", i)
               for i in range(overlap, cfg.casia.identities)]
    return people



def distractor_image_counts(cfg: SynthConfig) -> np.ndarray:
    """Photos per distractor person (in identity order): ``distractors.images`` dealt as evenly
    as possible, the first people taking one more."""
    part = cfg.distractors
    base, extra = divmod(part.images, part.identities)
    return base + (np.arange(part.identities) < extra).astype(int)

# CelebA's file order: training images first, then validation, then test (identity-disjoint).
_CELEBA_SPLIT = np.array([162770, 19867, 19962]) / 202599


def celeba_layout(cfg: SynthConfig) -> list[tuple[int, int, int]]:
    """(identity, image index of that identity, partition 0/1/2) for each CelebA file in order."""
    part = cfg.celeba
    rng = _rng(cfg.seed, "celeba", _STREAM_LAYOUT)
    # About images / identities each (CelebA: ~20, spread like its counts), at least one.
    weights = np.exp(0.35 * np.array([_NORMAL.inv_cdf(u)
                                      for u in _quantile_levels(part.identities)]))
    extra = (part.images - part.identities) * weights / weights.sum()
    counts = 1 + np.floor(extra).astype(int)
    short = part.images - counts.sum()
    counts[np.argsort(np.floor(extra) - extra, kind="stable")[:short]] += 1
    counts = counts[rng.permutation(part.identities)]

    order = rng.permutation(part.identities)
    cumulative = np.cumsum(counts[order]) / part.images
    n = part.identities
    train_end = int(np.clip(np.searchsorted(cumulative, _CELEBA_SPLIT[0]) + 1, 1, n - 2))
    val_end = int(np.clip(np.searchsorted(cumulative, _CELEBA_SPLIT[:2].sum()) + 1,
                          train_end + 1, n - 1))
    files = []
    for split, people in enumerate(np.split(order, [train_end, val_end])):
        images = [(int(i), k, split) for i in people for k in range(counts[i])]
        files += [images[k] for k in rng.permutation(len(images))]
    return files
