"""MTCNN on phone-sized photos: peak memory and time of a landmarks job, shrinking large images
(``align.mtcnn.max_side``) and decoding by pixels (``chunk_pixels``) against neither.

Data: 4032x3024 JPEGs (quality 90; 1008x756 with ``--quick``), each a SynthFaces "wild" face
(:func:`facerepro.align.quality.synthfaces_sample`, seed 0) blown up 4x (1000x1000, bicubic;
not blown up with ``--quick``) on a seeded smooth background; 16 of them (2 with
``--quick``).

Rows: :func:`facerepro.align.landmarks.landmark_table` (the landmarks job: threaded decoding,
the pixel chunks, the detector) in a child process per setting, so each row's peak resident
memory (``ru_maxrss``) and CPU time (user + system) are its own; 2 torch threads,
``OMP_WAIT_POLICY=PASSIVE``. ``no_face_in`` lists the photos where no face was found.

- ``max_side 1280, chunk_pixels 16M``: the defaults.
- ``max_side null, one chunk``: the code before them (256 images per chunk, no shrinking), on
  the first 1 and 4 photos only: on all 16 it needs about 16 GB (the issue's measurement).

Agreement rows: the largest distance (px of the source image) between a setting's landmarks and
the unshrunk detection of the same photos, also over the true inter-ocular distance; and on
the two real LFW photos of tests/data (250x250, px of the photo): shrunk to 200 and 125 px,
blown up 4x and shrunk back, and, as the detector's noise floor, moved by one pixel.

Weights: ``resources/models/mtcnn`` (fetched there with pip if missing).
Run from the repository root: ``python bench/bench_mtcnn_memory.py [--quick]``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import parse_args, peak_rss_mb, report  # noqa: E402

from facerepro import paths  # noqa: E402
from facerepro.align import landmarks, mtcnn_weights, quality  # noqa: E402

THREADS = 2
LFW = Path(__file__).resolve().parents[1] / "tests" / "data" / "lfw" / "images"
SETTINGS = {"min_face": 20, "factor": 0.709, "thresholds": [0.6, 0.7, 0.7],
            "nms": [0.5, 0.7, 0.7, 0.7], "centre_weight": 2.0, "batch_size": 16}


def write_photos(root: Path, count: int, height: int, width: int) -> tuple[pd.DataFrame, list]:
    """``count`` JPEGs of a SynthFaces face blown up ``height // 756`` times (4x on a
    4032x3024 photo) on a smooth background; the manifest and each photo's true eye distance
    in px."""
    faces, truth = quality.synthfaces_sample(count, seed=0)
    rng = np.random.default_rng(0)
    rows, eyes = [], []
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    blow_up = height // 756
    for i, face in enumerate(faces):
        side = blow_up * face.shape[0]
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        tone = rng.uniform(60, 200, 3)
        canvas = (tone + 40 * np.sin(xx / 400 + i)[..., None] * np.cos(yy / 300)[..., None])
        canvas = np.clip(canvas, 0, 255).astype(np.uint8)
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        canvas[top:top + side, left:left + side] = big
        path = f"{i:02d}.jpg"
        cv2.imwrite(str(root / path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        rows.append({"image_id": f"photo{i:02d}", "status": "kept", "path": path,
                     "height": height, "width": width})
        eyes.append(blow_up * float(np.linalg.norm(truth[i, 1] - truth[i, 0])))
    return pd.DataFrame(rows), eyes


def child(config: dict) -> None:
    """One landmarks job; prints its time, peak memory and landmarks as JSON."""
    import torch

    torch.set_num_threads(THREADS)
    manifest = pd.read_parquet(config["manifest"]).iloc[:config["images"]]
    start = time.perf_counter()
    table = landmarks.landmark_table("mtcnn", config["root"], "lfw", manifest,
                                     {**SETTINGS, **config["mtcnn"]}, config["weights"],
                                     workers=THREADS)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "peak_rss_mb": peak_rss_mb(),
                      "faces": table["faces"].astype(int).tolist(),
                      "points": table[landmarks.POINT_COLUMNS].to_numpy(float).tolist()}))


def run_child(config: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {config['mtcnn']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def lfw_rows(weights: Path) -> list[dict]:
    """The two LFW photos (250x250): their unshrunk landmarks against the landmarks found on
    the photo shrunk to ``max_side`` and mapped back, on the photo blown up 4x (bicubic) and
    shrunk back to 250 px, and, for the detector's own noise at one size, on the photo moved
    by one pixel (a replicated first row and column, mapped back by -1)."""
    from facerepro.align.mtcnn import MTCNN, Settings

    photos = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
              for f in sorted(LFW.glob("*.jpg"))]
    full = [f.landmarks[0] for f in MTCNN(weights).detect(photos)]
    moved = [cv2.copyMakeBorder(p, 1, 0, 1, 0, cv2.BORDER_REPLICATE) for p in photos]
    big = [cv2.resize(p, (1000, 1000), interpolation=cv2.INTER_CUBIC) for p in photos]
    variants = {"moved by 1 px, not shrunk": [f.landmarks[0] - 1 for f in
                                              MTCNN(weights).detect(moved)]}
    for side in (200, 125):
        detector = MTCNN(weights, settings=Settings(max_side=side))
        variants[f"max_side {side}"] = [f.landmarks[0] for f in detector.detect(photos)]
    detector = MTCNN(weights, settings=Settings(max_side=250))
    variants["blown up 4x, max_side 250"] = [(f.landmarks[0] + 0.5) / 4 - 0.5
                                             for f in detector.detect(big)]
    rows = []
    for name, found in variants.items():
        for i, (a, b) in enumerate(zip(full, found, strict=True)):
            gap = float(np.linalg.norm(a - b, axis=1).max())
            rows.append({"what": f"LFW photo {i}: {name} vs unshrunk",
                         "max_landmark_gap_px": gap,
                         "gap_over_eye_distance": gap / float(np.linalg.norm(a[1] - a[0]))})
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    count, (height, width), before = (2, (756, 1008), [1]) if args.quick else \
        (16, (3024, 4032), [1, 4])
    weights = mtcnn_weights.ensure(Path(paths.mtcnn_weights("pnet")).parent)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest, eyes = write_photos(root, count, height, width)
        manifest.to_parquet(root / "manifest.parquet")
        common = {"root": str(root), "manifest": str(root / "manifest.parquet"),
                  "weights": str(weights)}
        settings = [("max_side 1280, chunk_pixels 16M",
                     {"max_side": 1280, "chunk_pixels": 16_000_000}, count)]
        settings += [("max_side null, one chunk (before)",
                      {"max_side": None, "chunk_pixels": 2 ** 40}, n) for n in before]
        results = {}
        for name, mtcnn, images in settings:
            out = run_child({**common, "mtcnn": mtcnn, "images": images})
            results[(name, images)] = out
            rows.append({"what": name, "images": images, "side": f"{width}x{height}",
                         "seconds": out["seconds"], "cpu_seconds": out["cpu_seconds"],
                         "peak_rss_mb": out["peak_rss_mb"],
                         "faces_found": sum(f > 0 for f in out["faces"]),
                         "no_face_in": " ".join(str(i) for i, f in enumerate(out["faces"])
                                                if f == 0) or "-"})
        after = np.array(results[settings[0][0], count]["points"]).reshape(-1, 5, 2)
        n = max(before)
        full = np.array(results[settings[-1][0], n]["points"]).reshape(-1, 5, 2)
        gap = np.linalg.norm(after[:n] - full, axis=2).max(1)
        rows.append({"what": f"defaults vs unshrunk, first {n} photos", "images": n,
                     "max_landmark_gap_px": float(gap.max()),
                     "gap_over_eye_distance": float((gap / np.array(eyes[:n])).max())})
    rows += lfw_rows(weights)
    for row in rows:
        row["threads"] = THREADS
    report("mtcnn_memory", rows, args.out)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
