"""MTCNN: images/s batched against one image at a time, and landmark quality on SynthFaces.

Data: 250x250 SynthFaces "wild" images (LFW / CASIA-WebFace style, default nuisance, one
person each, JPEG round trip at each shot's quality) with their exact landmarks
(:func:`facerepro.align.quality.synthfaces_sample`, seed 0).

Speed rows: :class:`facerepro.align.mtcnn.MTCNN` on the first images of the sample, called
with batches of 16 (and 64 on a GPU) against the baseline of one image per call, on the CPU
(2 threads, ``OMP_WAIT_POLICY=PASSIVE`` unless set; see bench_trainer.py) and on CUDA when a
device is visible (synchronised; the first call is a warm-up). Best of 3.

Quality row (per device): over the whole sample, the detection rate (a face was found), the
error of the face the landmark policy picks as mean point distance over the true inter-ocular
distance (NME: mean, median; failure = NME > 0.1) and the mean signed offset detected - true
in px (x: left-right symmetric, so a bias there is a coordinate-convention error).

Weights: ``resources/models/mtcnn`` (fetched there with pip if missing).
Run from the repository root: ``python bench/bench_mtcnn.py [--quick]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, parse_args, peak_rss_mb, report  # noqa: E402

from facerepro import paths  # noqa: E402
from facerepro.align import mtcnn_weights, quality  # noqa: E402
from facerepro.align.mtcnn import MTCNN, Settings  # noqa: E402

THREADS = 2


def speed(detector: MTCNN, images: list, batch: int, repeat: int) -> float:
    """Images/s when ``detect`` is called with ``batch`` images at a time."""
    def run() -> None:
        for start in range(0, len(images), batch):
            detector.detect(images[start:start + batch])
        if detector.device.type == "cuda":
            torch.cuda.synchronize()

    run()                                            # warm-up: allocator, kernels, caches
    seconds, _ = best_time(run, repeat)
    return len(images) / seconds


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    torch.set_num_threads(THREADS)
    if args.quick:
        n_sample, n_speed, repeat = 4, 4, 1
    else:
        n_sample, n_speed, repeat = 1000, 64, 3
    weights = mtcnn_weights.ensure(Path(paths.mtcnn_weights("pnet")).parent)
    images, truth = quality.synthfaces_sample(n_sample, seed=0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        batches = [1, 16] + ([64] if device == "cuda" else [])
        base = None
        for batch in batches:
            detector = MTCNN(weights, device, Settings(batch_size=batch))
            rate = speed(detector, images[:n_speed], batch, repeat)
            base = base or rate
            rows.append({"device": device, "what": f"detect, {batch} image(s) per call",
                         "images": n_speed, "images_per_s": rate, "vs_one_at_a_time":
                         rate / base})
        detector = MTCNN(weights, device, Settings(batch_size=64 if device == "cuda" else 16))
        found = quality.summary(quality.detected_landmarks(detector, images), truth)
        rows.append({"device": device, "what": "SynthFaces landmarks vs truth", **found})
    for row in rows:
        row["threads"] = THREADS
        row["peak_rss_mb"] = peak_rss_mb()
    report("mtcnn", rows, args.out)


if __name__ == "__main__":
    main()
