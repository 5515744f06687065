"""Five-point landmarks for every kept image of a dataset part: its own file, or MTCNN.

Policy (config ``align.landmarks``; :mod:`facerepro.align.landmark_policy` applies it):

- ``dataset``: the part's landmark file; an error for a part without one.
- ``mtcnn``: MTCNN on every image, even where the dataset has landmarks (to compare them).
- ``auto`` (default): ``dataset`` where the source ships a landmark file for the part
  (``SHIPPED``: every SynthFaces part, real CelebA), else ``mtcnn`` (real LFW, CASIA-WebFace,
  ...). The choice is made when the workflow is planned, so the MTCNN weights are only fetched
  for parts that need them.

Several faces (config ``align.multi_face``, :data:`FACE_RULES`): ``centre_weighted``
(default) takes the face with the largest ``area - centre_weight * d**2`` (``d`` the distance
in px of its box centre from the image centre; facenet-pytorch's "center_weighted_size" with
weight 2): the large face near the centre, which is the subject in these datasets' crops;
``largest`` the largest box (a group photo whose subject stands nearest the camera);
``centre`` the box nearest the image centre. ``drop`` records the ``centre_weighted`` face
here and leaves the image out of the aligned shard (:mod:`facerepro.align.face_policy`). No
face: the image gets the mean landmarks and box of the images of the same part where MTCNN
found one, in coordinates relative to the image size (LFW and CASIA-WebFace images are crops
centred on a detected face, so faces sit in nearly the same place), flagged ``fallback``;
``align.no_face`` decides whether such an image is aligned from them or dropped.

Memory. Images are decoded in chunks of at most ``chunk_pixels`` source pixels (default 16
million: the 256 LFW images of 250x250 that one chunk held before, or one 12-megapixel phone
photo), and MTCNN shrinks any image longer than ``max_side`` before its pyramid (default
1280 px, :mod:`facerepro.align.mtcnn`): with the authors' ``min_face`` of 20 px, a 4032x3024
photo is searched for faces of 63 px and more (1.6% of its width), which any subject of a face
photo exceeds, while the pyramid's largest level shrinks from 2419x1815 to 768x576 cells.

Landmark files are whitespace tables whose data rows are ``path x1 y1 ... x5 y5`` (CelebA's
``list_landmarks_align_celeba.txt``, SynthFaces' ``*_landmarks.txt``); header and count lines
are skipped. A row's path may be relative to the part root or to the layout's image folder.

The table (one row per kept manifest image, in manifest order): ``image_id``; ``source``
(``dataset`` | ``mtcnn``); ``score`` (O-Net's face probability; NaN for dataset landmarks and
fallbacks); ``faces`` (how many faces MTCNN found; missing for dataset landmarks);
``fallback``; ``x1, y1, ..., x5, y5`` (landmarks in the source image, pixel centres);
``bx1, by1, bx2, by2`` (the detector's box, outer edges; NaN for dataset landmarks).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd
from tqdm import tqdm

from facerepro.align.images import read_rgb
from facerepro.atomic import atomic_path

if TYPE_CHECKING:
    from facerepro.align.mtcnn import Faces

log = logging.getLogger(__name__)

LANDMARK_FILES = {
    "lfw": "lfw_landmarks.txt",
    "casia": "CASIA-WebFace/casia_landmarks.txt",
    "celeba": "list_landmarks_align_celeba.txt",
    "folder": "landmarks.txt",        # a folder source's `landmarks` (facerepro.data.folder)
    "folder_ids": "landmarks.txt",
    "ytf": "YouTubeFaces/ytf_landmarks.txt",
    "facescrub": "facescrub_images/facescrub_landmarks.txt",
    "megaface": "megaface_images/megaface_landmarks.txt",
}
POINT_COLUMNS = [f"{axis}{k}" for k in range(1, 6) for axis in "xy"]
BOX_COLUMNS = ["bx1", "by1", "bx2", "by2"]
COLUMNS = ["image_id", "source", "score", "faces", "fallback", *POINT_COLUMNS, *BOX_COLUMNS]
FACE_RULES = ("centre_weighted", "largest", "centre")


class Detector(Protocol):
    def detect(self, images: Sequence[np.ndarray]) -> list[Faces]: ...


def read_landmark_file(path: str | Path) -> dict[str, np.ndarray]:
    """{path as written: (5, 2) float array} for every data row of the file."""
    table = {}
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) != 11:
            continue
        try:
            table[fields[0]] = np.array(fields[1:], dtype=np.float64).reshape(5, 2)
        except ValueError:
            continue    # the column-name header
    return table


def dataset_landmarks(root: str | Path, layout: str, paths: pd.Series) -> np.ndarray:
    """(N, 5, 2) landmarks for the manifest ``paths`` (relative to ``root``)."""
    if layout not in LANDMARK_FILES:
        raise ValueError(f"layout {layout!r} has no landmark file; use MTCNN landmarks")
    file = Path(root) / LANDMARK_FILES[layout]
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing: this dataset provides no landmarks; set "
                                f"align.landmarks: auto or mtcnn in the config")
    table = read_landmark_file(file)
    out = np.empty((len(paths), 5, 2))
    for i, p in enumerate(paths):
        parts = PurePosixPath(p).parts
        for key in (p, str(PurePosixPath(*parts[1:])), parts[-1]):
            if key in table:
                out[i] = table[key]
                break
        else:
            raise KeyError(f"{file} has no landmarks for {p}: add its line "
                           f"({PurePosixPath(*parts[1:])} x1 y1 ... x5 y5), or leave the "
                           f"landmarks file out to detect the faces with MTCNN")
    return out


def _table(image_id: pd.Series, source: str, points: np.ndarray, boxes: np.ndarray,
           score: np.ndarray, faces: pd.array, fallback: np.ndarray) -> pd.DataFrame:
    table = pd.DataFrame({"image_id": image_id.to_numpy(), "source": source, "score": score,
                          "faces": faces, "fallback": fallback})
    table[POINT_COLUMNS] = points.reshape(len(points), 10)
    table[BOX_COLUMNS] = boxes
    return table[COLUMNS]


def dataset_table(root: str | Path, layout: str, kept: pd.DataFrame) -> pd.DataFrame:
    """The table for the part's own landmarks."""
    n = len(kept)
    return _table(kept["image_id"], "dataset", dataset_landmarks(root, layout, kept["path"]),
                  np.full((n, 4), np.nan), np.full(n, np.nan), pd.array([pd.NA] * n, "Int64"),
                  np.zeros(n, bool))


def choose_face(faces: Faces, width: int, height: int, centre_weight: float,
                rule: str = "centre_weighted") -> int | None:
    """Index of the subject among the detected faces by ``rule`` (see the module docstring),
    or None."""
    if rule not in FACE_RULES:
        raise ValueError(f"face rule {rule!r} is not one of {FACE_RULES}")
    if len(faces.scores) == 0:
        return None
    boxes = faces.boxes
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    offset = centre - (np.array([width, height]) - 1) / 2    # the image centre, pixel centres
    distance2 = (offset ** 2).sum(1)
    if rule == "largest":
        return int(np.argmax(area))
    if rule == "centre":
        return int(np.argmin(distance2))
    return int(np.argmax(area - centre_weight * distance2))


def pixel_chunks(pixels: Sequence[int], budget: int) -> list[slice]:
    """Consecutive runs of images holding at most ``budget`` pixels together, each as long as
    the budget allows; an image larger than the budget is a run of its own."""
    chunks, start, total = [], 0, 0
    for i, count in enumerate(pixels):
        if i > start and total + count > budget:
            chunks.append(slice(start, i))
            start, total = i, 0
        total += count
    if start < len(pixels):
        chunks.append(slice(start, len(pixels)))
    return chunks


def detect_table(root: str | Path, kept: pd.DataFrame, detector: Detector,
                 centre_weight: float = 2.0, rule: str = "centre_weighted",
                 chunk_pixels: int = 16_000_000, workers: int = 2) -> pd.DataFrame:
    """The table from MTCNN: the face ``rule`` chooses per image, the fallback where there is
    none. Images are decoded ``chunk_pixels`` at a time (by the manifest's sizes)."""
    n = len(kept)
    points, boxes = np.full((n, 5, 2), np.nan), np.full((n, 4), np.nan)
    score, faces = np.full(n, np.nan), np.zeros(n, np.int64)
    size = np.zeros((n, 2))                                   # width, height
    files = [Path(root) / p for p in kept["path"]]
    pixels = (kept["height"] * kept["width"]).to_numpy(np.int64)
    with ThreadPoolExecutor(workers) as pool, tqdm(total=n, desc="mtcnn", mininterval=30) as bar:
        for chunk in pixel_chunks(pixels, chunk_pixels):
            images = list(pool.map(read_rgb, files[chunk]))
            for i, (image, found) in enumerate(zip(images, detector.detect(images),
                                                   strict=True), chunk.start):
                size[i] = image.shape[1], image.shape[0]
                faces[i] = len(found.scores)
                best = choose_face(found, image.shape[1], image.shape[0], centre_weight, rule)
                if best is not None:
                    points[i], boxes[i] = found.landmarks[best], found.boxes[best]
                    score[i] = found.scores[best]
            bar.update(len(images))
    fallback = faces == 0
    if fallback.all():
        raise ValueError(f"MTCNN found no face in any of the {n} images under {root}; check "
                         f"the images, or lower align.mtcnn.thresholds / min_face")
    # mean position relative to the image size (outer edges at 0 and 1), over the detections
    points[fallback] = _relative_mean(points, size, ~fallback)[None] * size[fallback, None] - 0.5
    boxes[fallback] = ((_relative_mean(boxes.reshape(n, 2, 2), size, ~fallback)[None]
                        * size[fallback, None] - 0.5).reshape(-1, 4))
    log.info("%d images: %d faces found, %d with several faces, %d fallbacks", n,
             int((~fallback).sum()), int((faces > 1).sum()), int(fallback.sum()))
    return _table(kept["image_id"], "mtcnn", points, boxes, score, pd.array(faces, "Int64"),
                  fallback)


def _relative_mean(points: np.ndarray, size: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Mean of (N, K, 2) points over ``rows``, as fractions of each image's width and height."""
    return ((points[rows] + 0.5) / size[rows, None]).mean(0)


def landmark_table(source: str, root: str | Path, layout: str, manifest: pd.DataFrame,
                   mtcnn: dict | None = None, weights_dir: str | Path | None = None,
                   device: str = "cpu", workers: int = 2, multi_face: str = "centre_weighted"
                   ) -> pd.DataFrame:
    """The landmark table of a part's kept images; ``mtcnn`` is the config's ``align.mtcnn``,
    ``multi_face`` its ``align.multi_face``."""
    kept = manifest[manifest["status"] == "kept"].reset_index(drop=True)
    if source == "dataset":
        return dataset_table(root, layout, kept)
    if mtcnn is None or weights_dir is None:
        raise ValueError("MTCNN landmarks need the align.mtcnn settings and the weights folder")
    from facerepro.align.mtcnn import MTCNN, Settings  # torch: dataset landmarks need none

    settings = Settings(min_face=mtcnn["min_face"], factor=mtcnn["factor"],
                        thresholds=tuple(mtcnn["thresholds"]), nms=tuple(mtcnn["nms"]),
                        batch_size=mtcnn["batch_size"], max_side=mtcnn["max_side"])
    detector = MTCNN(weights_dir, device, settings)
    # `drop` keeps the default rule's face on record; the align step leaves the image out
    rule = "centre_weighted" if multi_face == "drop" else multi_face
    return detect_table(root, kept, detector, mtcnn["centre_weight"], rule,
                        mtcnn["chunk_pixels"], workers)


def save(table: pd.DataFrame, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        table.to_parquet(tmp, index=False)
