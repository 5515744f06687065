"""Features of a raw folder of photos in one call, for one-off use (``facerepro verify FOLDER``).

The workflow's steps for a ``kind: folder`` evaluation part, run in sequence into a work
folder instead of as Snakemake jobs, with the same library functions and the config's
settings: copy the folder (:func:`facerepro.data.folder.copy_folder`), clean it (broken files
quarantined, byte-duplicates marked), five landmarks per photo (its landmarks file, else
MTCNN), the face policy (``align.no_face``, ``align.multi_face``), alignment to the run's crop
template, and the run's trained net on the original and mirrored faces. So a score from here
is the score the workflow would give the same photos with that run.

Nothing is downloaded: MTCNN's weights and the run's model must already be there (the
workflow's ``mtcnn_weights`` rule and the run's training); a missing one is an error that
names the command that makes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from facerepro import paths
from facerepro.align import face_policy
from facerepro.align.aligner import align_dataset
from facerepro.align.landmarks import landmark_table
from facerepro.align.transform import get_template
from facerepro.data.clean import EVALUATION_SPLIT, build_manifest
from facerepro.data.folder import FolderError, copy_folder
from facerepro.data.registry import FOLDER_FILES, FOLDER_LAYOUT
from facerepro.features import extract

FEATURES = "features.npz"


@dataclass(frozen=True)
class FolderFeatures:
    """Where the features are, and what cleaning and the face policy did on the way."""

    features: Path
    manifest: pd.DataFrame
    faces: dict


def embed_folder(folder: str | Path, config: dict, run: str, work: str | Path,
                 layout: str = "lfw", landmarks: str | Path | None = None,
                 device: str = "cpu", workers: int = 2) -> FolderFeatures:
    """Clean, align and embed ``folder`` (``<Name>/<file>``; ``layout: casia`` for numbered
    people) with ``run`` of the validated ``config``; everything is written under ``work``.

    ``landmarks`` (``Alice/1.jpg x1 y1 ... x5 y5`` per line) replaces MTCNN.
    """
    if not Path(folder).exists():
        raise FolderError(f"{folder}: no such folder or archive (relative paths are from "
                          f"{Path.cwd()}); give the folder of person folders")
    if run not in config["runs"]:
        raise FolderError(f"run {run!r} is not in the config; it has {sorted(config['runs'])}")
    model = Path(paths.model(run))
    if not model.is_file():
        raise FolderError(f"{model} is missing: train the run first (`.venv/bin/snakemake "
                          f"--cores all -- {model}`, with the config that defines it)")
    work = Path(work)
    files = {FOLDER_FILES["landmarks"]: str(Path(landmarks).resolve())} if landmarks else {}
    root = work / "part"
    copy_folder(folder, files, root, work / "part.json", key="folder")

    part_layout = FOLDER_LAYOUT[layout]
    align = config["align"]
    manifest = build_manifest(root, part_layout, EVALUATION_SPLIT, workers=workers)
    table = landmark_table("dataset" if landmarks else "mtcnn", root, part_layout, manifest,
                           mtcnn=align["mtcnn"], weights_dir=Path(paths.mtcnn_weights()).parent,
                           device=device, workers=workers, multi_face=align["multi_face"])
    faces = face_policy.summarise(table, align["no_face"], align["multi_face"])

    settings = config["runs"][run]
    template = get_template(settings["template"], scale=align["scale"],
                            margin=align["box_margin"])
    align_dataset(root, manifest, table, template, work / "aligned", workers,
                  drop=faces["ids"]["dropped"])
    extract(model, work / "aligned", work / FEATURES, flip_merge=settings["flip_merge"],
            device=device)
    return FolderFeatures(work / FEATURES, manifest, faces)
