"""Which faces of a part are aligned: the declared no-face and multi-face policies, their counts
and a QA grid of the images they touched.

``align.no_face`` (:data:`NO_FACE`): ``fallback`` (default) aligns an image where MTCNN found
no face from the part's mean face position (:mod:`facerepro.align.landmarks`); ``drop`` leaves
it out of the aligned shard, so no net trains on it and no protocol scores it. Fallback is the
default because the papers score every image of their test sets (LFW's 6,000 pairs), so a
dropped image would change the test set, and LFW-style images are crops centred on the face,
where the mean position is close; ``drop`` suits one's own photos, where a photo without a
face would otherwise be scored as its folder's person.

``align.multi_face`` (:data:`MULTI_FACE`): a rule of
:data:`~facerepro.align.landmarks.FACE_RULES` chooses the subject (default
``centre_weighted``), or ``drop`` leaves out every image with several faces (a group photo's
label names one of them, and no rule knows which).

Dataset landmarks (SynthFaces, CelebA) give one face per image: nothing falls back, is dropped
or is chosen. The summary of a part is one JSON file: the policies, the counts and the image
ids of each group; the align step drops its ``dropped`` ids and the evaluation records its
counts in the metrics.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from facerepro.align.images import read_rgb
from facerepro.align.landmarks import BOX_COLUMNS, FACE_RULES
from facerepro.atomic import atomic_path, write_json

log = logging.getLogger(__name__)

NO_FACE = ("fallback", "drop")
MULTI_FACE = (*FACE_RULES, "drop")
GROUPS = ("fallback", "multi_face", "dropped")     # aligned from a fallback, chosen, left out


def summarise(table: pd.DataFrame, no_face: str, multi_face: str) -> dict:
    """The policies, the count and the image ids of each group of :data:`GROUPS` (aligned from
    fallback landmarks; aligned from one face chosen among several; left out of the shard),
    and the dropped ones by reason, for a landmark table."""
    if no_face not in NO_FACE:
        raise ValueError(f"align.no_face {no_face!r} is not one of {NO_FACE}")
    if multi_face not in MULTI_FACE:
        raise ValueError(f"align.multi_face {multi_face!r} is not one of {MULTI_FACE}")
    none = table["fallback"].to_numpy(bool)
    several = table["faces"].fillna(0).to_numpy(np.int64) > 1
    dropped_none = none & (no_face == "drop")
    dropped_several = several & (multi_face == "drop")
    members = {"fallback": none & ~dropped_none, "multi_face": several & ~dropped_several,
               "dropped": dropped_none | dropped_several}
    ids = table["image_id"].astype(str).to_numpy()
    return {"no_face": no_face, "multi_face": multi_face, "images": len(table),
            "landmarks": sorted(table["source"].unique().tolist()),
            "counts": {group: int(mask.sum()) for group, mask in members.items()},
            "dropped_by_reason": {"no_face": int(dropped_none.sum()),
                                  "multi_face": int(dropped_several.sum())},
            "ids": {group: ids[mask].tolist() for group, mask in members.items()}}


def write_part(root: str | Path, manifest: pd.DataFrame, table: pd.DataFrame, no_face: str,
               multi_face: str, summary_dest: str | Path, qa_dest: str | Path) -> dict:
    """The part's summary and QA grid, written; the summary is returned."""
    summary = summarise(table, no_face, multi_face)
    log.info("%d images (landmarks: %s): %s; policies no_face=%s, multi_face=%s",
             summary["images"], ", ".join(summary["landmarks"]), summary["counts"], no_face,
             multi_face)
    kept = manifest[manifest["status"] == "kept"]
    qa_grid(root, kept, table, summary, qa_dest)
    write_json(summary_dest, summary)
    return summary


def read(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def touched(summary: dict) -> int:
    """How many images a policy touched: fell back, chosen among several or dropped."""
    return sum(summary["counts"].values())


def qa_grid(root: str | Path, kept: pd.DataFrame, table: pd.DataFrame, summary: dict,
            dest: str | Path, count: int = 24, side: int = 96) -> None:
    """Thumbnails (longer side ``side`` px) of the first ``count`` images each group holds,
    dropped first, with the box the landmarks came from (red: a detected face, orange: the
    fallback's mean position) and the group in the title; one line of text when there are
    none."""
    paths = dict(zip(kept["image_id"].astype(str), kept["path"], strict=True))
    rows = table.assign(image_id=table["image_id"].astype(str)).set_index("image_id")
    shown = [(group, i) for group in reversed(GROUPS) for i in summary["ids"][group]][:count]
    if not shown:
        fig = plt.figure(figsize=(6, 0.4), dpi=100)
        fig.text(0.01, 0.5, f"no fallbacks, drops or multi-face choices in "
                 f"{summary['images']} images", fontsize=9, va="center")
        _save(fig, dest)
        return
    cols = 8
    lines = int(np.ceil(len(shown) / cols))
    fig, axes = plt.subplots(lines, cols, figsize=(cols * 1.2, lines * 1.6), dpi=100,
                             squeeze=False, layout="constrained")
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, (group, image_id) in zip(np.ravel(axes), shown, strict=False):
        image = read_rgb(Path(root) / paths[image_id])
        factor = side / max(image.shape[:2])
        small = cv2.resize(image, (max(1, round(image.shape[1] * factor)),
                                   max(1, round(image.shape[0] * factor))),
                           interpolation=cv2.INTER_AREA)
        ax.imshow(small)
        row = rows.loc[image_id]
        x1, y1, x2, y2 = (row[BOX_COLUMNS].to_numpy(float) + 0.5) * factor - 0.5
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, linewidth=1.5,
                                   edgecolor="orange" if row["fallback"] else "red"))
        faces = row["faces"]
        what = "no face" if row["fallback"] else f"{faces} faces"
        ax.set_title(f"{group}: {what}\n{image_id[-14:]}", fontsize=6)
    _save(fig, dest)


def _save(fig: plt.Figure, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
