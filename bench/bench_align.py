"""Alignment throughput against a plain cv2.warpAffine loop; shard reads against training.

Part ``align``: images/s of :func:`facerepro.align.aligner.align_dataset` (decode, transform,
warp to the 56x48 ``sphere_112x96`` crop of the default config, write the memory-mapped shard
and its index) with 1 and 2 worker threads, against the plain loop anyone would write first:
``cv2.imread`` -> RGB -> Umeyama -> ``cv2.warpAffine`` into a preallocated array, one image at
a time. Data: 250x250 SynthFaces JPEGs (LFW / CASIA-WebFace style, each at its shot's JPEG
quality; 64 renders written under many names) with their true landmarks; the page cache is warm
after the first pass and the best of several passes counts.

Part ``shard``: images/s that the training loader (:class:`facerepro.training.loader.
BatchLoader`: shuffled batches of 64 gathered from the memmap, flipped, normalised) delivers
from a shard, with the file evicted from the page cache first (``posix_fadvise(DONTNEED)``,
"cold") and again with it cached ("warm"), against the images/s one training step consumes
(sphere4 forward + backward + SGD at 56x48, the default config's run; sphere20 at 112x96, the
paper-scale net). ``read_over_train`` > 1 means the loader's background thread keeps ahead.

torch runs on 2 threads with ``OMP_WAIT_POLICY=PASSIVE`` unless set (see bench_trainer.py).
Run from the repository root: ``python bench/bench_align.py [--quick]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, parse_args, peak_rss_mb, report  # noqa: E402

from facerepro import losses, models  # noqa: E402
from facerepro.align import aligner, landmarks, quality, transform  # noqa: E402
from facerepro.align.shards import IMAGES, read_shard, write_shard  # noqa: E402
from facerepro.training.loader import BatchLoader  # noqa: E402
from facerepro.training.samplers import ShuffleSampler  # noqa: E402

THREADS, BATCH = 2, 64


def write_dataset(root: Path, n_images: int, n_renders: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """JPEG files of SynthFaces renders with a landmark file; their manifest and landmarks."""
    renders, truth = quality.synthfaces_sample(n_renders, seed=0)
    (root / "img").mkdir(parents=True)
    encoded = [cv2.imencode(".jpg", cv2.cvtColor(r, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for r in renders]
    rows, lines = [], []
    for i in range(n_images):
        path = f"img/{i:06d}.jpg"
        (root / path).write_bytes(encoded[i % n_renders])
        rows.append({"image_id": f"i{i}", "identity": f"p{i % n_renders}", "split": "train",
                     "path": path, "status": "kept"})
        lines.append(" ".join([path, *(f"{v:.3f}" for v in truth[i % n_renders].ravel())]))
    (root / landmarks.LANDMARK_FILES["lfw"]).write_text("\n".join(lines) + "\n")
    manifest = pd.DataFrame(rows)
    return manifest, landmarks.landmark_table("dataset", root, "lfw", manifest)


def plain_loop(root: Path, manifest: pd.DataFrame, table: pd.DataFrame,
               template: transform.Template) -> np.ndarray:
    """The baseline: one image at a time, straight into an array."""
    points = table[landmarks.POINT_COLUMNS].to_numpy(float).reshape(-1, 5, 2)
    out = np.empty((len(manifest), template.height, template.width, 3), np.uint8)
    for i, path in enumerate(manifest["path"]):
        image = cv2.cvtColor(cv2.imread(str(root / path)), cv2.COLOR_BGR2RGB)
        m = transform.umeyama(points[i], template.points)
        out[i] = cv2.warpAffine(image, m, (template.width, template.height),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out


def bench_align(work: Path, n_images: int, n_renders: int, repeat: int) -> list[dict]:
    """Best images/s of each variant; rounds interleave the variants, so load drift on
    shared cores hits them alike."""
    manifest, table = write_dataset(work / "data", n_images, n_renders)
    template = transform.get_template("sphere_112x96", 0.5)
    data = work / "data"
    variants = {"plain cv2.warpAffine loop": lambda: plain_loop(data, manifest, table, template)}
    for workers in (1, 2):
        variants[f"align_dataset, {workers} thread(s)"] = (
            lambda w=workers: aligner.align_dataset(data, manifest, table, template,
                                                    work / f"shard{w}", w))
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeat):
        for name, run in variants.items():
            seconds, result = best_time(run, 1)
            best[name] = min(best[name], seconds)
            if name.startswith("plain"):
                baseline = result
    loop_s = best["plain cv2.warpAffine loop"]
    rows = [{"part": "align", "what": name, "images": n_images,
             "images_per_s": n_images / seconds, "vs_loop": loop_s / seconds}
            for name, seconds in best.items()]
    for row, workers in zip(rows[1:], (1, 2), strict=True):
        row["same_pixels"] = bool(np.array_equal(read_shard(work / f"shard{workers}")[0],
                                                  baseline))
    return rows


def evict(path: Path) -> None:
    """Drop a file's pages from the page cache (no root needed for clean pages)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def loader_rate(shard: Path, n_batches: int) -> float:
    """Images/s the training loader hands to a consumer that does nothing."""
    images, index = read_shard(shard)
    positions = np.arange(len(index))
    labels = np.zeros(len(index), np.int64)
    loader = BatchLoader(images, positions, labels, ShuffleSampler(len(index), BATCH, 0), 0,
                         n_batches, flip=True, seed=0)
    start = time.perf_counter()
    for _ in loader:
        pass
    return n_batches * BATCH / (time.perf_counter() - start)


def train_rate(net: str, size: tuple[int, int], steps: int) -> float:
    """Images/s of training steps (forward, backward, SGD) on random batches."""
    torch.manual_seed(0)
    model = models.build(net, size, 512)
    loss_fn = losses.build("softmax", 512, np.arange(100))     # 100 classes
    optimizer = torch.optim.SGD([*model.parameters(), *loss_fn.parameters()], lr=0.01,
                                momentum=0.9)
    x = torch.randn(BATCH, 3, *size)
    y = torch.randint(0, 100, (BATCH,))

    def step() -> None:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()                                           # warm-up: allocator, kernels
    seconds, _ = best_time(lambda: [step() for _ in range(steps)], 2)
    return steps * BATCH / seconds


def bench_shard(work: Path, settings: list[tuple[str, str, tuple[int, int], int]],
                n_batches: int, steps: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for label, net, (h, w), n_images in settings:
        shard = work / f"read_{h}x{w}"
        index = pd.DataFrame({"image_id": [f"i{k}" for k in range(n_images)],
                              "identity": "p", "split": "train"})
        # a few random crops repeated: the content does not matter to the reads
        pool = rng.integers(0, 256, (16, h, w, 3), np.uint8)
        write_shard(shard, (pool[k % 16] for k in range(n_images)), index, h, w)
        evict(shard / IMAGES)
        cold = loader_rate(shard, n_batches)
        warm = max(loader_rate(shard, n_batches) for _ in range(2))
        consume = train_rate(net, (h, w), steps)
        rows.append({"part": "shard", "what": f"{label}: loader vs {net} training step",
                     "images": n_images, "cold_images_per_s": cold, "warm_images_per_s": warm,
                     "train_images_per_s": consume, "read_over_train": cold / consume})
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    torch.set_num_threads(THREADS)
    if args.quick:
        n_images, n_renders, repeat = 24, 4, 1
        settings = [("56x48", "sphere4", (56, 48), 300)]
        n_batches, steps = 3, 1
    else:
        n_images, n_renders, repeat = 2000, 64, 5
        settings = [("56x48", "sphere4", (56, 48), 20_000),
                    ("112x96", "sphere20", (112, 96), 6_000)]
        n_batches, steps = 60, 5
    with tempfile.TemporaryDirectory(prefix="bench_align_") as tmp:
        rows = bench_align(Path(tmp), n_images, n_renders, repeat)
        rows += bench_shard(Path(tmp), settings, n_batches, steps)
    for row in rows:
        row["threads"] = THREADS
        row["peak_rss_mb"] = peak_rss_mb()
    report("align", rows, args.out)


if __name__ == "__main__":
    main()
