"""MegaFace-style identification with 10^6 distractors: faiss top-k search vs a numpy baseline.

Data: d = 128 unit vectors; 100 probe identities x 5 images (a centre plus noise) and random
distractors. The target (``megaface_identification``) searches the distractors once per probe
with faiss. The baseline is the straightforward approach: the full probe x distractor score
matrix in numpy chunks, each probe's row sorted (rank of every target by binary search) and
all impostor scores sorted for the TAR threshold. The baseline runs on a distractor subset that
fits in memory; both run on that subset (same rank-1 and TAR required, time ratio per probe),
then the target alone runs at full size. Each measurement runs in a fresh process, so its peak
resident memory (data included) is its own.

Run from the repository root: ``python bench/bench_identification.py [--quick]``.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, parse_args, peak_rss_mb, report  # noqa: E402

from facerepro.evaluation.identification import megaface_identification  # noqa: E402

DIM, IDENTITIES, IMAGES, FAR = 128, 100, 5, 1e-6


def make_data(n_distractors: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(IDENTITIES), IMAGES)
    # Noise of norm ~1.1 around a unit centre puts genuine cosines near the top distractor
    # scores of 10^6 random directions, so rank-1 is neither 0 nor 1.
    centres = rng.standard_normal((IDENTITIES, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    probes = centres[ids] + 0.1 * rng.standard_normal((len(ids), DIM), dtype=np.float32)
    distractors = rng.standard_normal((n_distractors, DIM), dtype=np.float32)
    return probes, ids, distractors


def baseline(probes: np.ndarray, ids: np.ndarray, distractors: np.ndarray, far: float,
             chunk: int = 50) -> dict:
    """Rank-1 and TAR at ``far`` from the full score matrix, sort based."""
    probes = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    distractors = distractors / np.linalg.norm(distractors, axis=1, keepdims=True)
    same = ids[:, None] == ids[None, :]
    genuine = probes @ probes.T
    hits, pairs, impostor = 0, 0, []
    for start in range(0, len(probes), chunk):
        rows = np.sort(probes[start:start + chunk] @ distractors.T, axis=1)
        impostor.append(rows)
        for offset, row in enumerate(rows):
            p = start + offset
            targets = genuine[p, same[p] & (np.arange(len(probes)) != p)]
            # Distractors scoring >= the target: ties are misses.
            ahead = row.size - np.searchsorted(row, targets, side="left")
            hits += int(np.count_nonzero(ahead == 0))
            pairs += targets.size
    impostor = np.sort(np.concatenate(impostor, axis=None))[::-1]
    allowed = int(far * impostor.size + 1e-9)
    value = impostor[allowed]
    tar = np.mean(genuine[np.triu(same, 1)] > value)
    return {"rank1": hits / pairs, "tar": float(tar)}


def measure(method: str, n_distractors: int, repeat: int) -> dict:
    """Time one method in this (fresh) process, so its peak memory is its own."""
    probes, ids, distractors = make_data(n_distractors)
    if method == "baseline":
        seconds, result = best_time(lambda: baseline(probes, ids, distractors, FAR), repeat)
    else:
        seconds, out = best_time(
            lambda: megaface_identification(probes, ids, distractors, fars=(FAR,)), repeat)
        result = {"rank1": out["rank1"], "tar": out["verification"][0]["tar"]}
    return {"method": METHODS[method], "distractors": n_distractors, "probes": len(probes),
            "seconds": seconds, "ms_per_probe": 1e3 * seconds / len(probes),
            "rank1": result["rank1"], "tar_at_1e-6": result["tar"],
            "peak_rss_mb": peak_rss_mb()}


METHODS = {"baseline": "numpy full matrix + sort", "faiss": "faiss top-k (this module)"}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    full, subset = (10_000, 2_000) if args.quick else (1_000_000, 100_000)
    repeat = 1 if args.quick else 3
    spawn = multiprocessing.get_context("spawn")
    rows = []
    for method, size in [("baseline", subset), ("faiss", subset), ("faiss", full)]:
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            rows.append(pool.submit(measure, method, size, repeat).result())
    base, same = rows[0], rows[1]
    same["speedup_per_probe"] = base["ms_per_probe"] / same["ms_per_probe"]
    same["rank1_agrees"] = same["rank1"] == base["rank1"]
    same["tar_agrees"] = same["tar_at_1e-6"] == base["tar_at_1e-6"]
    report("identification", rows, args.out)
    if not (same["rank1_agrees"] and same["tar_agrees"]):
        sys.exit("faiss and the numpy baseline disagree on the same distractors")


if __name__ == "__main__":
    main()
