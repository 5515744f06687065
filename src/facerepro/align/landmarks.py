"""Five-point landmarks per image, from the dataset's own landmark file.

Files are whitespace tables whose data rows are ``path x1 y1 ... x5 y5`` (CelebA's
``list_landmarks_align_celeba.txt``, SynthFaces' ``*_landmarks.txt``); header and count lines
are skipped. A row's path may be relative to the part root or to the layout's image folder.
Datasets without landmarks (real LFW, CASIA) are detected with MTCNN instead.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

LANDMARK_FILES = {
    "lfw": "lfw_landmarks.txt",
    "casia": "CASIA-WebFace/casia_landmarks.txt",
    "celeba": "list_landmarks_align_celeba.txt",
}


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
                                f"align.landmarks: mtcnn in the config")
    table = read_landmark_file(file)
    out = np.empty((len(paths), 5, 2))
    for i, p in enumerate(paths):
        parts = PurePosixPath(p).parts
        for key in (p, str(PurePosixPath(*parts[1:])), parts[-1]):
            if key in table:
                out[i] = table[key]
                break
        else:
            raise KeyError(f"{file} has no landmarks for {p}")
    return out
