"""Build a dataset part's manifest: every image file found, kept or quarantined with a reason.

Invariant (asserted): kept + quarantined = found. Nothing is deleted; a quarantined row says
why, as ``reason`` or ``reason:detail``:

- ``zero_bytes``, ``not_an_image`` (no image format recognised), ``truncated``, ``undecodable``
  (recognised but cannot be decoded, by Pillow or by OpenCV, which the aligner reads with),
  ``too_small`` (shorter side under ``min_side``);
- ``duplicate_of:<image_id>``: the same bytes as an earlier file (in path order), in a training
  part. An evaluation part (split ``test``) keeps such a copy, so that a pairs file may name
  it; the ``duplicate_of`` column names the first copy in every part (empty for the others);
- ``not_in_a_person_folder``: a folder source's image outside any ``<person>/`` folder;
- ``overlaps_eval:<set>``: the person is also in an evaluation set (names compared after
  :func:`normalise_name`), so no model trains on someone it is tested on;
- ``too_few_images``: fewer than ``min_images`` kept images of this person remain.

Colour: a kept image stored as grayscale, CMYK, with alpha, palette or 16-bit is recorded in
the ``converted`` column (``"CMYK->RGB"``; empty for 8-bit RGB). No converted copies are
written: the aligner's reader (``cv2.imread`` with ``IMREAD_COLOR``) converts every such mode
to 8-bit 3-channel colour, and cleaning checks each kept file decodes that way. Alpha is
dropped, not composited (face crops carry no meaningful transparency).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import unicodedata
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from facerepro.atomic import atomic_path
from facerepro.threads import use_threads

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
MANIFEST_COLUMNS = ["image_id", "identity", "split", "path", "sha256", "height", "width",
                    "status", "reason", "converted", "duplicate_of"]
CELEBA_SPLITS = {0: "train", 1: "val", 2: "test"}
KEPT, QUARANTINED = "kept", "quarantined"

# Image folder of each layout, relative to the part root. Identity is the first folder under
# it, except CelebA (identity_CelebA.txt) and MegaFace (the distractor's Flickr folder).
LAYOUTS = {
    "lfw": "lfw",
    "lfw_funneled": "lfw_funneled",
    "casia": "CASIA-WebFace",
    "celeba": "img_align_celeba",
    "ytf": "YouTubeFaces/frame_images_DB",
    "facescrub": "facescrub_images",
    "megaface": "megaface_images",
    "folder": "images",         # a folder source (facerepro.data.folder): <Name>/<file>
    "folder_ids": "images",     # the same with numbered people: <id>/<file>
}
FOLDER_LAYOUTS = {"folder", "folder_ids"}
# Layouts whose identities are people's names (so they can be matched across datasets).
NAMED_LAYOUTS = {"lfw", "lfw_funneled", "casia", "ytf", "facescrub", "folder"}
# The split of an evaluation part, whose byte-duplicates stay addressable.
EVALUATION_SPLIT = "test"
CASIA_NAMES = "CASIA-WebFace/names.txt"
CIFAR_DIR = "cifar-100-python"


def _image_files(root: Path, subdir: str) -> list[Path]:
    base = root / subdir
    if not base.is_dir():
        raise FileNotFoundError(
            f"{base} is missing: the extracted dataset does not have the expected layout. "
            f"Delete {root} and re-run to extract again."
        )
    return sorted(p for p in base.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def list_images(root: str | Path, layout: str, split: str) -> pd.DataFrame:
    """One row per image file: image_id (relative path without suffix), identity, split, path.

    ``lfw_funneled`` images get the ids of the same images in ``lfw`` (``lfw/<Name>/...``), so
    one pairs file serves both. ``split`` is a split name for every row, ``partition`` (CelebA's
    list_eval_partition.txt) or ``per_file`` (CIFAR-100: train or test by pickle file).
    """
    root = Path(root)
    if layout == "cifar100":
        return _cifar_rows(root)[["image_id", "identity", "split", "path"]]
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {sorted(LAYOUTS)} and cifar100")
    image_dir = LAYOUTS[layout]
    files = _image_files(root, image_dir)
    under = [f.relative_to(root / image_dir) for f in files]
    if layout == "celeba":
        ids = _read_two_columns(root / "identity_CelebA.txt")
        missing = [f.name for f in files if f.name not in ids]
        if missing:
            raise KeyError(f"{root / 'identity_CelebA.txt'} has no identity for {len(missing)} "
                           f"images, e.g. {missing[0]}; the part is inconsistent")
        identity = [ids[f.name] for f in files]
    elif layout == "megaface":
        identity = ["/".join(u.parts[:-1]) or u.stem for u in under]
    elif layout in FOLDER_LAYOUTS:
        # "" marks a file outside any person's folder; build_manifest quarantines it
        identity = [u.parts[0] if len(u.parts) > 1 else "" for u in under]
    else:
        identity = [u.parts[0] for u in under]
    rel = [f.relative_to(root).with_suffix("").as_posix() for f in files]
    if layout == "lfw_funneled":
        rel = ["lfw" + r.removeprefix("lfw_funneled") for r in rel]
    if layout in FOLDER_LAYOUTS:
        _refuse_same_ids(root, rel, files)
    if split == "partition":
        part = _read_two_columns(root / "list_eval_partition.txt")
        splits = [CELEBA_SPLITS[int(part[f.name])] for f in files]
    else:
        splits = [split] * len(files)
    return pd.DataFrame({
        "image_id": rel,
        "identity": identity,
        "split": splits,
        "path": [f.relative_to(root).as_posix() for f in files],
    })


def _refuse_same_ids(root: Path, ids: list[str], files: list[Path]) -> None:
    """An image id is the path without its suffix: ``a.jpg`` and ``a.png`` of one folder would
    share one; a user's folder may hold both, so it is refused with the fix."""
    seen: dict[str, Path] = {}
    for image_id, f in zip(ids, files, strict=True):
        if image_id in seen:
            raise ValueError(f"{seen[image_id]} and {f} differ only in their suffix, so both "
                             f"would be image {image_id!r}: rename one of them (under "
                             f"{root}, or in your folder and re-run)")
        seen[image_id] = f


def _read_two_columns(path: Path) -> dict[str, str]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; the dataset part is incomplete.")
    pairs = (line.split() for line in path.read_text().splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def identity_names(root: str | Path, layout: str,
                   identities: Iterable[str] | None = None) -> dict[str, str]:
    """{identity: person's name} of an extracted part (of ``identities`` when given, else of
    every image found), without decoding any image.

    CASIA-WebFace identities are folder numbers; their names come from ``names.txt``
    (``<id> <Name>`` per line), which must then be present.
    """
    if layout not in NAMED_LAYOUTS:
        raise ValueError(f"layout {layout!r} identifies people by number, not name: overlap "
                         f"with other datasets cannot be found by name")
    root = Path(root)
    if identities is None:
        identities = list_images(root, layout, "test")["identity"]
    identities = sorted(set(identities) - {""})     # "": a folder's photo outside any person
    if layout != "casia":
        return {i: i for i in identities}
    names_file = root / CASIA_NAMES
    if not names_file.exists():
        raise FileNotFoundError(
            f"{names_file} is missing: removing people who are also in an evaluation set needs "
            f"CASIA-WebFace's names ('<id> <Name>' per line). Place it in the archive, or list "
            f"the overlapping folder ids under datasets.<source>.clean.overlap_lists instead "
            f"of overlap_with.")
    names = {}
    for line in names_file.read_text(encoding="utf-8").splitlines():
        fields = line.split(maxsplit=1)
        if len(fields) == 2:
            names[fields[0]] = fields[1].strip()
    return {i: names.get(i, i) for i in identities}


def normalise_name(name: str) -> str:
    """A person's name for matching across datasets: accents stripped, case folded, and every
    run of spaces, underscores and punctuation made one space (``José_Ángel`` = ``jose angel``)."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(w for w in re.split(r"[\W_]+", plain.casefold()) if w)


def read_name_list(path: str | Path) -> list[str]:
    """Names from a text file, one per line; blank lines and ``#`` comments are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [s for line in lines if (s := line.split("#", 1)[0].strip())]


def overlap_names(evaluation_parts: Mapping[str, tuple[str | Path, str]],
                  lists: Mapping[str, Iterable[str] | str]) -> dict[str, list[str]]:
    """{set label: person names} to exclude from a training part.

    ``evaluation_parts`` maps a dataset (``lfw/lfw``) to its extracted root and layout; every
    person of it counts, not only those in its pairs. ``lists`` maps a label to names, or to a
    text file of names (:func:`read_name_list`).
    """
    out = {dataset: sorted(identity_names(root, layout).values())
           for dataset, (root, layout) in evaluation_parts.items()}
    for label, names in lists.items():
        out[label] = read_name_list(names) if isinstance(names, str) else list(names)
    return out


def inspect_image(path: Path, min_side: int = 32) -> tuple[str, int, int, str, str, str]:
    """(sha256, height, width, status, reason, converted) of one file, decoding it fully with
    Pillow (which notices truncation and gives the colour mode) and with OpenCV (the aligner's
    reader, whose size is recorded)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return digest, 0, 0, QUARANTINED, "zero_bytes", ""
    try:
        with Image.open(io.BytesIO(data)) as image:
            mode = image.mode
            image.load()
    except UnidentifiedImageError:
        return digest, 0, 0, QUARANTINED, "not_an_image", ""
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "undecodable"
        return digest, 0, 0, QUARANTINED, reason, ""
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        return digest, 0, 0, QUARANTINED, "undecodable", ""
    height, width = decoded.shape[:2]
    if min(height, width) < min_side:
        return digest, height, width, QUARANTINED, "too_small", ""
    return digest, height, width, KEPT, "", "" if mode == "RGB" else f"{mode}->RGB"


def _one_thread() -> None:
    use_threads(1)          # the pool's processes are the job's threads: one each


def _inspect_all(paths: list[Path], min_side: int, workers: int) -> list[tuple]:
    if workers <= 1 or len(paths) < 256:
        return [inspect_image(p, min_side) for p in paths]
    with ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
        return list(pool.map(inspect_image, paths, [min_side] * len(paths), chunksize=64))


def build_manifest(root: str | Path, layout: str, split: str, min_side: int = 32, *,
                   min_images: int = 1, exclude: Mapping[str, Iterable[str]] | None = None,
                   workers: int = 1) -> pd.DataFrame:
    """Inspect every image of a part; quarantine broken files, exact duplicates (of a training
    part; an evaluation part only marks them), people of the ``exclude`` sets ({label: names})
    and people left with fewer than ``min_images``."""
    root = Path(root)
    if layout == "cifar100":
        rows = _cifar_rows(root)
    else:
        rows = list_images(root, layout, split)
        checked = _inspect_all([root / p for p in rows["path"]], min_side, workers)
        rows[["sha256", "height", "width", "status", "reason", "converted"]] = pd.DataFrame(
            checked, index=rows.index, columns=["sha256", "height", "width", "status",
                                                "reason", "converted"])
    found = len(rows)
    if layout in FOLDER_LAYOUTS:
        _quarantine(rows, (rows["status"] == KEPT) & (rows["identity"] == ""),
                    "not_in_a_person_folder")

    kept = rows["status"] == KEPT
    first = rows[kept].drop_duplicates("sha256").set_index("sha256")["image_id"]
    dup = kept & rows["sha256"].where(kept).duplicated()
    rows["duplicate_of"] = rows["sha256"].where(dup).map(first).fillna("")
    # A pairs file of an evaluation part may name either copy; a training part trains on one.
    if split != EVALUATION_SPLIT:
        _quarantine(rows, dup, "duplicate_of:" + rows.loc[dup, "duplicate_of"])

    if exclude:
        # A person matches by name, or by identity (an explicit list may give CASIA folder ids).
        people = rows["identity"].unique()
        names = identity_names(root, layout, people) if layout in NAMED_LAYOUTS else {}
        keys = {i: {normalise_name(names.get(i, i)), normalise_name(i)} for i in people}
        for label, listed in exclude.items():
            wanted = {normalise_name(p) for p in listed}
            matched = {i for i, k in keys.items() if k & wanted}
            hit = (rows["status"] == KEPT) & rows["identity"].isin(matched)
            _quarantine(rows, hit, f"overlaps_eval:{label}")

    if min_images > 1:
        kept = rows["status"] == KEPT
        counts = rows[kept].groupby("identity").size()
        few = kept & rows["identity"].map(counts).lt(min_images)
        _quarantine(rows, few, "too_few_images")

    quarantined = rows["status"] == QUARANTINED
    assert (rows["status"] == KEPT).sum() + quarantined.sum() == found == len(rows), \
        "manifest lost or invented rows"
    assert (rows.loc[quarantined, "reason"] != "").all(), "a quarantined row has no reason"
    return rows[MANIFEST_COLUMNS]


def _quarantine(rows: pd.DataFrame, mask: pd.Series, reason: str | pd.Series) -> None:
    rows.loc[mask, "status"] = QUARANTINED
    rows.loc[mask, "reason"] = reason      # a Series aligns on the index
    rows.loc[mask, "converted"] = ""


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR's dicts of numpy arrays and nothing else: a pickle can run any code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        if module == "numpy.core.multiarray":     # the pickles predate numpy 2's rename
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def _load_cifar(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; the CIFAR-100 part is incomplete.")
    with open(path, "rb") as fh:
        return _ArrayUnpickler(fh, encoding="bytes").load()


def _cifar_rows(root: Path) -> pd.DataFrame:
    """CIFAR-100's 60,000 images live in two pickles: one row each, ``path`` ``<file>#<row>``.
    The arrays are always decodable 32x32 RGB; duplicates are still looked for."""
    base = root / CIFAR_DIR
    classes = [n.decode() for n in _load_cifar(base / "meta")[b"fine_label_names"]]
    frames = []
    for split in ("train", "test"):
        batch = _load_cifar(base / split)
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"fine_labels"])
        n = len(data)
        frames.append(pd.DataFrame({
            "image_id": [f"{CIFAR_DIR}/{split}/{i:05d}" for i in range(n)],
            "identity": [classes[k] for k in labels],
            "split": split,
            "path": [f"{CIFAR_DIR}/{split}#{i}" for i in range(n)],
            "sha256": [hashlib.sha256(row.tobytes()).hexdigest() for row in data],
            "height": 32, "width": 32, "status": KEPT, "reason": "", "converted": "",
        }))
    return pd.concat(frames, ignore_index=True)


def write_manifest(manifest: pd.DataFrame, dest: str | Path) -> None:
    """Write the manifest as parquet, atomically."""
    with atomic_path(dest) as tmp:
        manifest.to_parquet(tmp, index=False)
