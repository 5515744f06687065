"""Start one training job on what the run asks for: the CPU, one leased GPU, or DDP.

A run with ``gpus: N > 1`` on CUDA is re-launched under ``torchrun`` with N workers on the N
leased devices (``CUDA_VISIBLE_DEVICES`` is set by the lease, so the workers see exactly
them); each worker enters :func:`main`, joins the process group and calls the same
:func:`~facerepro.training.trainer.train`. The lock directory is machine-wide so that jobs of
different checkouts never share a GPU; ``FACEREPRO_GPU_LOCKS`` moves it.

The job's threads (:func:`facerepro.threads.use_threads`, ``OMP_NUM_THREADS`` once it has run)
are shared out among the workers, so N workers together use the cores the job was given.

torch and the trainer are imported when they are used: the features and landmarks jobs import
this module for :func:`leased_device` alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facerepro.threads import ENV_VARS, use_threads
from facerepro.training import gpu
from facerepro.training.gpu import resolve_device

if TYPE_CHECKING:
    import torch

LOCK_DIR = os.environ.get("FACEREPRO_GPU_LOCKS", "/tmp/facerepro-gpu-locks")


@contextmanager
def leased_device(device: str, gpus: int = 1) -> Iterator[torch.device]:
    """The device to use, holding a lease on ``gpus`` GPUs while on CUDA.

    The lease sets ``CUDA_VISIBLE_DEVICES`` before anything touches CUDA, so ``cuda:0`` is the
    first leased GPU.
    """
    if not gpu.uses_cuda(device):
        import torch

        yield torch.device("cpu")
        return
    with gpu.lease(gpus, LOCK_DIR):
        yield resolve_device("cuda")


def train(**kwargs: Any) -> dict:
    """:func:`facerepro.training.trainer.train`, imported on the first call."""
    from facerepro.training.trainer import train as run_training

    return run_training(**kwargs)


def run_job(run: dict, device: str = "auto", **kwargs: Any) -> None:
    """Train ``run`` on ``device`` under a GPU lease: on the CPU, one GPU, or its ``gpus`` under
    DDP. ``kwargs`` are :func:`~facerepro.training.trainer.train`'s other keyword arguments."""
    with leased_device(device, run["gpus"]) as dev:
        kwargs = {**kwargs, "run": run, "device": dev.type}    # resolved once, under the lease
        if dev.type == "cuda" and run["gpus"] > 1:
            torchrun(run["gpus"], kwargs)
        else:
            train(**kwargs)


def torchrun(workers: int, kwargs: dict[str, Any]) -> None:
    """Run :func:`main` in ``workers`` processes on this machine (``torchrun --standalone``),
    each calling :func:`~facerepro.training.trainer.train` with the keyword arguments
    ``kwargs`` (paths may be :class:`~pathlib.Path`). Each worker computes on this job's
    threads divided by ``workers`` (at least one; torchrun's one when the job set none)."""
    env = dict(os.environ)
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        share = max(1, int(os.environ["OMP_NUM_THREADS"]) // workers)
        env.update(dict.fromkeys(ENV_VARS, str(share)))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(kwargs, fh, default=str)
    try:
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={workers}", "-m", "facerepro.training.launch",
                        fh.name], check=True, env=env)
    finally:
        os.unlink(fh.name)


def main(kwargs_file: str) -> None:
    use_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))   # the share torchrun() set
    import torch

    kwargs = json.loads(Path(kwargs_file).read_text())
    cuda = resolve_device(kwargs["device"]).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    torch.distributed.init_process_group("nccl" if cuda else "gloo")
    try:
        train(**kwargs)
    finally:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
