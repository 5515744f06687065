"""Random streams: each is ``SeedSequence((seed, part, stream, identity, image))``, so
output does not depend on order or process count."""

from __future__ import annotations

import numpy as np

PARTS: tuple[str, ...] = ("lfw", "casia", "celeba", "ytf", "facescrub", "distractors")
_PART_CODE = {"lfw": 1, "casia": 2, "celeba": 3, "ytf": 4, "facescrub": 5, "distractors": 6}
_STREAM_IDENTITY, _STREAM_IMAGE, _STREAM_LAYOUT = 1, 2, 3


def _rng(seed: int, part: str, stream: int, a: int = 0, b: int = 0) -> np.random.Generator:
    # Always five words: SeedSequence([1, 2]) and SeedSequence([1, 2, 0]) are the same stream.
    return np.random.default_rng(np.random.SeedSequence([seed, _PART_CODE[part], stream, a, b]))
