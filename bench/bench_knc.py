"""k-nearest-cluster classification (CLMLE Eq. 10) vs instance kNN: time and accuracy.

The paper's claim (CLMLE, section 5 "Computational cost"): the cluster-wise search is
"typically 1000 times faster than standard kNN", because it searches ``L / l`` cluster
centroids instead of ``L`` samples (``l = 200``) and adds a KD-tree. Here both searches are
exact faiss inner-product searches (``IndexFlatIP``), so the ratio measured is that of
searching fewer vectors, plus Eq. 10's per-class bookkeeping.

Data: d = 64 unit vectors; classes of 1,000 training samples each (so 10, 100, 1,000 classes
for 10^4, 10^5, 10^6 gallery vectors), each class a mixture of 5 modes scattered around a class
direction, samples = mode + Gaussian noise, normalised. Validation and test queries (1,000
each) come from the same distribution. ``N`` (kNC) and ``k`` (kNN) are chosen on the
validation queries by accuracy, both in the same grid: 1, 3, 5, 10, then the paper's 20:10:200
(Eq. 10's accuracy can fall with ``N``: a class is scored by its least similar retrieved
cluster, so a larger ``N`` reaches the class's far modes). Then the 1,000 test queries are
classified by each and the prediction times compared (best of 3).
``fit_s`` is the per-class spherical k-means into clusters of l = 200 plus the index build;
instance kNN's fit is only the index build. Each gallery size runs in a fresh process, so its
peak resident memory (data included) is its own.

Run from the repository root: ``python bench/bench_knc.py [--quick]``.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, parse_args, peak_rss_mb, report  # noqa: E402

from facerepro.evaluation.knc import (  # noqa: E402
    InstanceKNN,
    KNearestClusterClassifier,
    select_n_clusters,
)

DIM, PER_CLASS, MODES, CLUSTER_SIZE, QUERIES = 64, 1000, 5, 200, 1000
# Mode spread around the class direction and per-sample noise (per-dimension std); chosen so
# that neither classifier is near 0 or 1 in accuracy.
MODE_SPREAD, NOISE = 0.9, 0.17
GRID = (1, 3, 5, 10, *range(20, 201, 10))


def make_data(n_gallery: int, seed: int = 0) -> dict:
    """Gallery, validation and test vectors (float32) with their class labels."""
    rng = np.random.default_rng(seed)
    n_classes = max(2, n_gallery // PER_CLASS)

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    centres = unit(rng.standard_normal((n_classes, 1, DIM), dtype=np.float32))
    offsets = unit(rng.standard_normal((n_classes, MODES, DIM), dtype=np.float32))
    modes = unit(centres + MODE_SPREAD * offsets).reshape(-1, DIM)

    def sample(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = modes[labels * MODES + rng.integers(0, MODES, len(labels))]
        x += NOISE * rng.standard_normal(x.shape, dtype=np.float32)
        return unit(x), labels

    gallery, gallery_y = sample(np.arange(n_gallery) % n_classes)
    val, val_y = sample(rng.integers(0, n_classes, QUERIES))
    test, test_y = sample(rng.integers(0, n_classes, QUERIES))
    return {"gallery": gallery, "gallery_y": gallery_y, "val": val, "val_y": val_y,
            "test": test, "test_y": test_y, "n_classes": n_classes}


def measure(n_gallery: int, repeat: int) -> dict:
    """Fit, select and time both classifiers in this (fresh) process."""
    data = make_data(n_gallery)
    start = time.perf_counter()
    knc = KNearestClusterClassifier(cluster_size=CLUSTER_SIZE).fit(data["gallery"],
                                                                   data["gallery_y"])
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    knn = InstanceKNN().fit(data["gallery"], data["gallery_y"])
    knn_fit_s = time.perf_counter() - start
    n, _ = select_n_clusters(knc, data["val"], data["val_y"], GRID, accuracy_score)
    k, _ = select_n_clusters(knn, data["val"], data["val_y"], GRID, accuracy_score)
    knc.set_params(n_clusters=n)
    knn.set_params(n_neighbors=k)
    knc_s, knc_pred = best_time(lambda: knc.predict(data["test"]), repeat)
    knn_s, knn_pred = best_time(lambda: knn.predict(data["test"]), repeat)
    return {"n_gallery": n_gallery, "n_classes": data["n_classes"],
            "n_clusters": len(knc.centroids_), "N": n, "k": k,
            "knc_fit_s": fit_s, "knn_fit_s": knn_fit_s,
            "knc_predict_ms": 1e3 * knc_s, "knn_predict_ms": 1e3 * knn_s,
            "speedup": knn_s / knc_s,
            "knc_accuracy": accuracy_score(data["test_y"], knc_pred),
            "knn_accuracy": accuracy_score(data["test_y"], knn_pred),
            "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    sizes = (4_000,) if args.quick else (10_000, 100_000, 1_000_000)
    repeat = 1 if args.quick else 3
    spawn = multiprocessing.get_context("spawn")
    rows = []
    for size in sizes:
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            rows.append(pool.submit(measure, size, repeat).result())
    report("knc", rows, args.out)


if __name__ == "__main__":
    main()
