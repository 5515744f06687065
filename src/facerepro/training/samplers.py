"""Batch samplers with a resumable position, so a restarted run sees the same batches.

Every sampler yields row indices into the training rows (``next_batch``) and has a
``state_dict`` of plain ints (checkpoints are read with ``weights_only=True``); a sampler
restored from it mid-run yields exactly the batches the original would have. Randomness comes
from generators keyed by (seed, position), never from a generator carried along, so the
position alone is the state. The trainer picks a sampler by name through ``build``; further
samplers (CLMLE's cluster batches) plug in with ``register``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np


class ShuffleSampler:
    """Epochs of a seeded random permutation, cut into fixed-size batches (last one dropped)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < batch_size:
            raise ValueError(f"{n} training images for a batch of {batch_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.position = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)

    def next_batch(self) -> np.ndarray:
        if self.position + self.batch_size > self.n:
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._permutation()
        batch = self._order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation()


class Sampler(Protocol):
    """What the trainer needs from a sampler."""

    def next_batch(self) -> np.ndarray: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def _rng(seed: int, *key: int) -> np.random.Generator:
    # SeedSequence ignores trailing zeros ([s, 1] and [s, 1, 0] are one stream); the nonzero
    # terminator keeps keys of different lengths on different streams.
    return np.random.default_rng([seed, *key, 1])


def _group_rows(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ordered by identity, and each identity's start and count in that order."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    return order, np.cumsum(counts) - counts, counts


class IdentitySampler:
    """FaceNet batches: P identities x K images, each identity's K rows consecutive.

    Only identities with at least two images are eligible, because a triplet needs a positive.
    Identities are visited in epochs of a seeded permutation; an epoch is floor(E / P) batches
    of the E eligible identities, so each appears at most once per epoch and the E mod P left
    over (different ones each epoch) sit that epoch out, as ShuffleSampler drops its remainder.
    An identity with at least K images gives K distinct ones; one with fewer gives all of its
    images plus draws with replacement from them up to K, so every batch has P * K rows.
    """

    def __init__(self, labels: np.ndarray, identities_per_batch: int, images_per_identity: int,
                 seed: int) -> None:
        if images_per_identity < 2:
            raise ValueError(f"images_per_identity is {images_per_identity}; triplets need at "
                             f"least 2 images of an identity in the batch")
        if identities_per_batch < 2:
            raise ValueError(f"identities_per_batch is {identities_per_batch}; triplets need "
                             f"negatives from at least 2 identities")
        order, starts, counts = _group_rows(np.asarray(labels))
        self._groups = [order[s:s + c] for s, c in zip(starts, counts, strict=True) if c >= 2]
        if len(self._groups) < identities_per_batch:
            raise ValueError(f"{len(self._groups)} identities have at least 2 images, fewer than "
                             f"the {identities_per_batch} identities per batch")
        self.identities_per_batch = identities_per_batch
        self.images_per_identity = images_per_identity
        self.batch_size = identities_per_batch * images_per_identity
        self.seed = seed
        self.epoch, self.position = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return _rng(self.seed, self.epoch).permutation(len(self._groups))

    def next_batch(self) -> np.ndarray:
        if self.position + self.identities_per_batch > len(self._groups):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._permutation()
        rng = _rng(self.seed, self.epoch, self.position)
        picked = self._order[self.position:self.position + self.identities_per_batch]
        self.position += self.identities_per_batch
        return np.concatenate([self._draw(self._groups[i], rng) for i in picked])

    def _draw(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k = self.images_per_identity
        if len(rows) >= k:
            return rng.choice(rows, k, replace=False)
        return np.concatenate([rows, rng.choice(rows, k - len(rows))])

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._permutation()


class PairSampler:
    """DeepID2+ / Compact int32 pairs: ``rows[0::2]`` and ``rows[1::2]`` are the two sides.

    The first ``round(positive_fraction * batch_size / 2)`` pairs are same-identity: an identity
    drawn uniformly among those with at least two images, then two distinct images of it. The
    rest are different-identity: two distinct identities drawn uniformly among all of them,
    then one image of each. Pairs are drawn independently (with replacement) batch after batch.
    """

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int,
                 positive_fraction: float = 0.5) -> None:
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"batch_size {batch_size} must be even and positive: a pair "
                             f"batch holds batch_size / 2 pairs")
        if not 0.0 <= positive_fraction <= 1.0:
            raise ValueError(f"positive_fraction {positive_fraction} is not in [0, 1]")
        pairs = batch_size // 2
        self.same_pairs = round(positive_fraction * pairs)
        self.different_pairs = pairs - self.same_pairs
        self._order, self._starts, self._counts = _group_rows(np.asarray(labels))
        self._eligible = np.flatnonzero(self._counts >= 2)
        if self.same_pairs and not len(self._eligible):
            raise ValueError("no identity has 2 images, so there are no same-identity pairs; "
                             "set positive_fraction to 0 or use other training data")
        if self.different_pairs and len(self._counts) < 2:
            raise ValueError(f"{len(self._counts)} identity in the training data: "
                             f"different-identity pairs need at least 2")
        self.batch_size, self.seed = batch_size, seed
        self.batches = 0

    def _image(self, identity: np.ndarray, index: np.ndarray) -> np.ndarray:
        return self._order[self._starts[identity] + index]

    def next_batch(self) -> np.ndarray:
        rng = _rng(self.seed, self.batches)
        self.batches += 1
        same = self._eligible[rng.integers(len(self._eligible), size=self.same_pairs)]
        first = rng.integers(0, self._counts[same])
        # A second index drawn from count - 1 and shifted past the first is distinct from it.
        second = rng.integers(0, self._counts[same] - 1)
        second += second >= first
        n = len(self._counts)
        a = rng.integers(n, size=self.different_pairs)
        b = rng.integers(n - 1, size=self.different_pairs)
        b += b >= a
        rows = np.empty(self.batch_size, np.int64)
        rows[0::2] = np.concatenate([self._image(same, first),
                                     self._image(a, rng.integers(0, self._counts[a]))])
        rows[1::2] = np.concatenate([self._image(same, second),
                                     self._image(b, rng.integers(0, self._counts[b]))])
        return rows

    def state_dict(self) -> dict:
        return {"batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.batches = int(state["batches"])


def pair_labels(rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """For a pair batch, True where the pair ``(rows[2i], rows[2i + 1])`` is one identity."""
    rows, labels = np.asarray(rows), np.asarray(labels)
    if len(rows) % 2:
        raise ValueError(f"{len(rows)} rows do not form pairs")
    return labels[rows[0::2]] == labels[rows[1::2]]


Factory = TypeVar("Factory", bound=Callable[..., Sampler])
_FACTORIES: dict[str, Callable[..., Sampler]] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    """Make ``factory(labels, batch_size, seed, **options) -> Sampler`` buildable by name."""
    def add(factory: Factory) -> Factory:
        if name in _FACTORIES:
            raise ValueError(f"a sampler named {name!r} is already registered")
        _FACTORIES[name] = factory
        return factory
    return add


def build(name: str, labels: np.ndarray, batch_size: int, seed: int, **options: Any) -> Sampler:
    """The sampler ``name`` over the training rows with these ``labels``."""
    if name not in _FACTORIES:
        raise KeyError(f"unknown sampler {name!r}; known: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[name](np.asarray(labels), batch_size, seed, **options)


@register("shuffle")
def _shuffle(labels: np.ndarray, batch_size: int, seed: int) -> ShuffleSampler:
    return ShuffleSampler(len(labels), batch_size, seed)


@register("identity")
def _identity(labels: np.ndarray, batch_size: int, seed: int, images_per_identity: int,
              identities_per_batch: int | None = None) -> IdentitySampler:
    if identities_per_batch is None:
        identities_per_batch = batch_size // images_per_identity
    # A silently smaller batch would misreport the run's batch size.
    if identities_per_batch * images_per_identity != batch_size:
        raise ValueError(f"batch_size {batch_size} must equal identities_per_batch x "
                         f"images_per_identity ({identities_per_batch} x {images_per_identity} "
                         f"= {identities_per_batch * images_per_identity})")
    return IdentitySampler(labels, identities_per_batch, images_per_identity, seed)


register("pair")(PairSampler)
