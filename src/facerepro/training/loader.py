"""Training batches assembled on a background thread, so the model never waits on the disk.

Reading a batch is a gather from the memory-mapped shard, a flip, and the uint8 -> float
normalisation; numpy and torch release the GIL for all three, so one thread keeps ahead of the
training step. Each batch carries the sampler state *after* it was drawn: a checkpoint taken
after training on batch s stores that state, so a restart draws batch s + 1 next even though
the thread had already drawn further ahead.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from facerepro import models
from facerepro.training.samplers import Sampler


@dataclass
class Batch:
    step: int                  # 0-based index of this batch in the run
    x: torch.Tensor            # this process's share of the batch, normalised, on the CPU
    y: torch.Tensor
    sampler_state: dict


FLIP_STREAM = 0x666C6970        # "flip": keeps these draws apart from the samplers' streams


def flip_mask(batch_size: int, seed: int, step: int) -> np.ndarray:
    """Which rows of global batch ``step`` are mirrored: keyed by (seed, step), so a resumed
    run and every DDP rank agree without sharing a generator."""
    return np.random.default_rng([seed, step, FLIP_STREAM]).random(batch_size) < 0.5


class BatchLoader:
    """Iterates batches ``start..end-1``; ``wait_s`` is the time the consumer spent waiting.

    With ``world > 1`` (DDP) every rank draws the same global batch and keeps the contiguous
    ``rank``-th slice, so pairs and P x K groups stay whole when the slice size allows it.
    ``prefetch=0`` draws each batch when it is asked for, on the caller's thread: for samplers
    that depend on what the last step did (CLMLE's loss cache).
    """

    def __init__(self, images: np.ndarray, positions: np.ndarray, labels: np.ndarray,
                 sampler: Sampler, start: int, end: int, flip: bool, seed: int,
                 rank: int = 0, world: int = 1, prefetch: int = 2) -> None:
        self.images, self.positions, self.labels = images, positions, labels
        self.sampler, self.start, self.end = sampler, start, end
        self.flip, self.seed, self.rank, self.world = flip, seed, rank, world
        self.wait_s = 0.0
        self.prefetch = prefetch
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, daemon=True)

    def _assemble(self, step: int) -> Batch:
        rows = np.asarray(self.sampler.next_batch())
        state = self.sampler.state_dict()
        if len(rows) % self.world:
            raise ValueError(f"a batch of {len(rows)} cannot be split over {self.world} ranks")
        share = len(rows) // self.world
        mine = slice(self.rank * share, (self.rank + 1) * share)
        chunk = rows[mine]
        # Gather in ascending order (sequential reads of the memmap), then restore the
        # sampler's order, which pair and P x K losses rely on.
        order = np.argsort(chunk, kind="stable")
        batch = np.empty((share, *self.images.shape[1:]), self.images.dtype)
        batch[order] = self.images[self.positions[chunk[order]]]
        if self.flip:
            mirrored = flip_mask(len(rows), self.seed, step)[mine]
            batch[mirrored] = batch[mirrored, :, ::-1]
        return Batch(step, models.to_input(batch), torch.from_numpy(self.labels[chunk]), state)

    def _produce(self) -> None:
        try:
            for step in range(self.start, self.end):
                item = self._assemble(step)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:    # re-raised in the consumer, which owns the error
            self._queue.put(exc)

    def __iter__(self) -> Iterator[Batch]:
        if self.prefetch == 0:
            for step in range(self.start, self.end):
                waited = time.perf_counter()
                batch = self._assemble(step)
                self.wait_s += time.perf_counter() - waited
                yield batch
            return
        self._thread.start()
        try:
            for _ in range(self.start, self.end):
                waited = time.perf_counter()
                item = self._queue.get()
                self.wait_s += time.perf_counter() - waited
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()
