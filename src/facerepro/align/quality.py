"""How well detected landmarks match the truth: detection rate and normalised mean error.

The error of one image is the mean distance of its five detected points from the true ones,
divided by the true inter-ocular distance (between the two eye landmarks, which SynthFaces puts
at the pupils): the usual "NME" of five-point landmark benchmarks. The sample is SynthFaces
"wild" images (250x250, LFW / CASIA-WebFace style) with their exact landmarks, JPEG-compressed
at each shot's quality as the dataset files are.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facerepro.align.landmarks import Detector, choose_face
from facerepro.data import synth

FAILURE_NME = 0.1      # an image whose NME exceeds this counts as a failure


def normalised_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N,) mean point error over inter-ocular distance; NaN where ``predicted`` is NaN."""
    distance = np.linalg.norm(predicted - truth, axis=-1).mean(-1)
    return distance / np.linalg.norm(truth[:, 1] - truth[:, 0], axis=-1)


def summary(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Detection rate, NME statistics over the detected images, failure rate (NME > 0.1, over
    the detected images) and the mean signed offset (detected - true, px)."""
    found = ~np.isnan(predicted).any((1, 2))
    result = {"images": len(truth), "detection_rate": float(found.mean())}
    if not found.any():
        return {**result, **dict.fromkeys(["nme_mean", "nme_median", "failure_rate",
                                           "offset_x_px", "offset_y_px"], np.nan)}
    nme = normalised_errors(predicted[found], truth[found])
    offset = (predicted[found] - truth[found]).reshape(-1, 2).mean(0)
    return {**result, "nme_mean": float(nme.mean()), "nme_median": float(np.median(nme)),
            "failure_rate": float((nme > FAILURE_NME).mean()),
            "offset_x_px": float(offset[0]), "offset_y_px": float(offset[1])}


def synthfaces_sample(count: int, seed: int = 0, nuisance: synth.Nuisance | None = None
                      ) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` SynthFaces wild images (RGB, JPEG round trip) of as many people, and their
    (count, 5, 2) true landmarks."""
    nuisance = nuisance or synth.Nuisance()
    images, truth = [], np.empty((count, 5, 2))
    for i in range(count):
        person = synth.make_identity(seed, "lfw", i, f"p{i}")
        shot = synth.sample_shot(person, np.random.default_rng([seed, i]), nuisance)
        image, truth[i] = synth.render(person, shot)
        encoded = np.frombuffer(synth.encode_jpeg(image, shot.jpeg_quality), np.uint8)
        images.append(cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return images, truth


def detected_landmarks(detector: Detector, images: Sequence[np.ndarray],
                       centre_weight: float = 2.0) -> np.ndarray:
    """(N, 5, 2) landmarks of the face the landmark policy would choose; NaN where none."""
    out = np.full((len(images), 5, 2), np.nan)
    for i, (image, faces) in enumerate(zip(images, detector.detect(images), strict=True)):
        best = choose_face(faces, image.shape[1], image.shape[0], centre_weight)
        if best is not None:
            out[i] = faces.landmarks[best]
    return out
