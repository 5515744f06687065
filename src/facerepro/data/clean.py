"""Build a dataset part's manifest: every image file found, kept or quarantined with a reason.

Invariant: kept + quarantined = found. Nothing is deleted; a quarantined row says why
(``zero_bytes``, ``undecodable``, ``too_small``, ``duplicate_of:<image_id>``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from facerepro.atomic import atomic_path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
MANIFEST_COLUMNS = ["image_id", "identity", "split", "path", "sha256", "height", "width",
                    "status", "reason"]
CELEBA_SPLITS = {0: "train", 1: "val", 2: "test"}


def _image_files(root: Path, subdir: str) -> list[Path]:
    base = root / subdir
    if not base.is_dir():
        raise FileNotFoundError(
            f"{base} is missing: the extracted dataset does not have the expected layout. "
            f"Delete {root} and re-run to extract again."
        )
    return sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def list_images(root: Path, layout: str, split: str) -> pd.DataFrame:
    """One row per image file: image_id (relative path without suffix), identity, split, path."""
    root = Path(root)
    if layout == "lfw":
        files = _image_files(root, "lfw")
        identity = [f.parent.name for f in files]
    elif layout == "casia":
        files = _image_files(root, "CASIA-WebFace")
        identity = [f.parent.name for f in files]
    elif layout == "celeba":
        files = _image_files(root, "img_align_celeba")
        ids = _read_two_columns(root / "identity_CelebA.txt")
        identity = [ids[f.name] for f in files]
    else:
        raise ValueError(f"unknown layout {layout!r}")
    rel = [f.relative_to(root) for f in files]
    if split == "partition":
        part = _read_two_columns(root / "list_eval_partition.txt")
        splits = [CELEBA_SPLITS[int(part[f.name])] for f in files]
    else:
        splits = [split] * len(files)
    return pd.DataFrame({
        "image_id": [str(r.with_suffix("")) for r in rel],
        "identity": identity,
        "split": splits,
        "path": [str(r) for r in rel],
    })


def _read_two_columns(path: Path) -> dict[str, str]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; the dataset part is incomplete.")
    pairs = (line.split() for line in path.read_text().splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def inspect_image(path: Path, min_side: int) -> tuple[str, int, int, str, str]:
    """(sha256, height, width, status, reason) of one file, decoding it fully."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return digest, 0, 0, "quarantined", "zero_bytes"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        return digest, 0, 0, "quarantined", "undecodable"
    height, width = image.shape[:2]
    if min(height, width) < min_side:
        return digest, height, width, "quarantined", "too_small"
    return digest, height, width, "kept", ""


def build_manifest(root: Path, layout: str, split: str, min_side: int = 32) -> pd.DataFrame:
    """Inspect every image of a part; quarantine broken files and exact duplicates."""
    rows = list_images(root, layout, split)
    checked = [inspect_image(Path(root) / p, min_side) for p in rows["path"]]
    rows[["sha256", "height", "width", "status", "reason"]] = pd.DataFrame(
        checked, index=rows.index)
    kept = rows["status"] == "kept"
    first = rows[kept].drop_duplicates("sha256").set_index("sha256")["image_id"]
    dup = kept & rows["sha256"].where(kept).duplicated()
    rows.loc[dup, "status"] = "quarantined"
    rows.loc[dup, "reason"] = "duplicate_of:" + rows.loc[dup, "sha256"].map(first)
    return rows[MANIFEST_COLUMNS]


def write_manifest(manifest: pd.DataFrame, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        manifest.to_parquet(tmp, index=False)
