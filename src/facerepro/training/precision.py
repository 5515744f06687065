"""The arithmetic a run trains in (``precision``): fp32, or bf16 autocast where it is native.

``bf16`` runs the forward pass under ``torch.autocast(dtype=torch.bfloat16)``: the net's
convolutions and matrix products compute in bf16 and, on the CPU, the ops after them (softmax,
sums, norms) keep their bf16 inputs; the loss (``trainer.Objective``) and the weights stay fp32,
and the backward follows the forward's dtypes. It is used only where the hardware computes bf16
natively: CUDA devices that report it, and CPUs with AVX512-BF16 or AMX. Elsewhere autocast
would still run, through slow emulation, so a run that asks for bf16 there trains in fp32 and
says so in its log. ``auto`` is bf16 on CUDA (the speed of a GPU run) and fp32 on the CPU, so
the default CPU config keeps its fp32 numbers; a bf16 CPU run is bit-identical run to run as
well (``tests/test_determinism.py``).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

import torch

log = logging.getLogger(__name__)


def cpu_bf16() -> bool:
    """Whether this CPU has native bf16 instructions (AVX512-BF16 or AMX, which oneDNN's bf16
    kernels use) and CPU autocast casts a matrix product to bf16 on it."""
    native = any(getattr(torch.cpu, probe, lambda: False)()
                 for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    if not native:
        return False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = torch.nn.functional.linear(torch.ones(1, 2), torch.ones(2, 2))
    return out.dtype == torch.bfloat16


def bf16_supported(dev: torch.device) -> bool:
    if dev.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return dev.type == "cpu" and cpu_bf16()


def resolve(precision: str, dev: torch.device, run_name: str) -> str:
    """The precision ``run_name`` trains in on ``dev`` (``fp32`` or ``bf16``) for its config
    value (``auto``, ``fp32`` or ``bf16``; the schema allows no other)."""
    if precision == "fp32" or (precision == "auto" and dev.type != "cuda"):
        return "fp32"
    if bf16_supported(dev):
        return "bf16"
    if precision == "bf16":
        log.warning("run %s asks for precision bf16, but %s has no native bf16 arithmetic "
                    "(CPU: AVX512-BF16 or AMX); it trains in fp32", run_name, dev)
    return "fp32"


def autocast(precision: str, dev: torch.device) -> AbstractContextManager:
    """The context a training step's forward runs in, for a resolved ``precision``."""
    if precision == "bf16":
        return torch.autocast(dev.type, dtype=torch.bfloat16)
    return nullcontext()
