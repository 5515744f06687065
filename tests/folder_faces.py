"""SynthFaces photos written as a user's folder of faces (tests of ``kind: folder``)."""

from pathlib import Path

import cv2
import numpy as np

from facerepro.data import synth


def write_faces(folder: Path, names: list[str], per_person: int = 3) -> dict[str, np.ndarray]:
    """SynthFaces photos ``<name>/<name>_000k.{jpg,png}`` of mixed sizes; {relative path:
    the five landmarks in the written image}."""
    landmarks = {}
    for i, name in enumerate(names):
        person = synth.make_identity(3, "lfw", i, name)
        for k in range(per_person):
            shot = synth.sample_shot(person, np.random.default_rng(10 * i + k), synth.Nuisance())
            image, points = synth.render(person, shot)
            scale = (1.0, 1.6, 0.8)[k % 3]
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            rel = f"{name}/{name}_{k + 1:04d}.{'png' if k % 2 else 'jpg'}"
            (folder / name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / rel), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            # pixel centres scale about the image's corner at -0.5
            landmarks[rel] = (points + 0.5) * scale - 0.5
    return landmarks


def write_landmarks(path: Path, landmarks: dict[str, np.ndarray]) -> None:
    path.write_text("".join(f"{rel} " + " ".join(f"{v:.3f}" for v in p.ravel()) + "\n"
                            for rel, p in landmarks.items()))
