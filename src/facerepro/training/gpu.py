"""Lease concrete GPUs for one training job.

Snakemake only counts ``resources: gpu=N``; it does not say which devices a job may use. A
lease takes one ``flock`` per device on ``<lock_dir>/gpu<i>.lock`` and exports the leased ids
as ``CUDA_VISIBLE_DEVICES``, so this process and the torchrun workers it starts use exactly
those devices (as ``cuda:0..n-1``). The kernel drops a flock when its holder dies, so a killed
job never leaks a lease. When a scheduler (SLURM etc.) already set ``CUDA_VISIBLE_DEVICES`` it
has chosen the devices: the lease takes the first ``n`` of them and locks nothing.

Enter the lease before CUDA is initialised in this process: CUDA reads
``CUDA_VISIBLE_DEVICES`` once, at initialisation.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

VISIBLE = "CUDA_VISIBLE_DEVICES"


@contextmanager
def lease(n: int, lock_dir: str | Path, device_count: int | None = None, poll_s: float = 5.0,
          timeout_s: float | None = None) -> Iterator[list[str]]:
    """Hold ``n`` GPUs for the block; yields their ids as ``CUDA_VISIBLE_DEVICES`` spells them.

    ``device_count`` defaults to ``torch.cuda.device_count()``. All ``n`` devices are taken at
    once or none is kept: a job holding part of what it needs while waiting for the rest could
    deadlock with another job doing the same. Free devices are polled every ``poll_s`` seconds;
    after ``timeout_s`` (None: wait for ever) a TimeoutError is raised.
    """
    if n < 0:
        raise ValueError(f"cannot lease {n} GPUs")
    if n == 0:
        yield []
        return
    if VISIBLE in os.environ:
        yield _scheduled(n)
        return
    if device_count is None:
        # Imported here so that processes which never count devices do not pay for torch.
        import torch

        device_count = torch.cuda.device_count()
    if n > device_count:
        raise ValueError(f"{n} GPUs requested but this machine has {device_count}; lower the "
                         f"job's gpu count (config / `resources: gpu`) to at most "
                         f"{device_count} or run it on a machine with more GPUs")
    held = _acquire(n, Path(lock_dir), device_count, poll_s, timeout_s)
    ids = [str(device) for device in sorted(held)]
    torch_module = sys.modules.get("torch")
    if torch_module is not None and torch_module.cuda.is_initialized():
        log.warning("CUDA was initialised before the GPU lease: this process still sees every "
                    "device; only processes it starts are limited to %s", ids)
    try:
        os.environ[VISIBLE] = ",".join(ids)
        yield ids
    finally:
        # The lock path is only taken when the variable was unset, so unset is the old state.
        os.environ.pop(VISIBLE, None)
        _release(held)


def visible_gpus() -> int:
    """How many GPUs this process may use, without initialising CUDA.

    A scheduler's ``CUDA_VISIBLE_DEVICES`` decides when set; otherwise torch counts devices
    through NVML, which leaves CUDA uninitialised, so a lease taken afterwards still binds.
    """
    if VISIBLE in os.environ:
        return len([d for d in os.environ[VISIBLE].split(",") if d.strip()])
    import torch

    return torch.cuda.device_count()


def resolve_device(name: str) -> torch.device:
    """The torch device of a config's ``device`` (cpu | cuda | auto); a DDP worker's own GPU."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config asks for device: cuda but no CUDA device is visible; "
                           "set device: cpu or auto")
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(name)


def uses_cuda(device: str) -> bool:
    """Whether ``device`` (cpu | cuda | auto) means CUDA here; never initialises CUDA, so a
    GPU lease taken afterwards still decides which devices this process sees."""
    if device == "cpu":
        return False
    if device == "cuda":
        return True
    return visible_gpus() > 0


def _scheduled(n: int) -> list[str]:
    visible = [device.strip() for device in os.environ[VISIBLE].split(",") if device.strip()]
    if n > len(visible):
        raise ValueError(f"{n} GPUs requested but the scheduler made {len(visible)} visible "
                         f"({VISIBLE}={os.environ[VISIBLE]!r}); request {n} GPUs from the "
                         f"scheduler or lower the job's gpu count")
    return visible[:n]


def _acquire(n: int, lock_dir: Path, device_count: int, poll_s: float,
             timeout_s: float | None) -> dict[int, int]:
    """Device id -> open, flocked file descriptor for ``n`` devices."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    waiting_logged = False
    while True:
        held: dict[int, int] = {}
        for device in range(device_count):
            fd = _try_lock(lock_dir / f"gpu{device}.lock")
            if fd is not None:
                held[device] = fd
                if len(held) == n:
                    return held
        _release(held)
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(
                f"could not lease {n} of {device_count} GPUs within {timeout_s} s; other jobs "
                f"hold them (lock files in {lock_dir} name the holders)")
        if not waiting_logged:
            log.info("waiting for %d free GPUs (locks in %s)", n, lock_dir)
            waiting_logged = True
        pause = poll_s if deadline is None else min(poll_s, max(0.0, deadline - time.monotonic()))
        time.sleep(pause)


def _try_lock(path: Path) -> int | None:
    # O_TRUNC is avoided: it would wipe the current holder's note before we know we own it.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    note = f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, note.encode(), 0)
    return fd


def _release(held: dict[int, int]) -> None:
    for fd in held.values():
        # Closing the only descriptor of the open file drops its flock.
        os.ftruncate(fd, 0)
        os.close(fd)
