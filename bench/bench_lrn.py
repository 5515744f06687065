"""FaceNet's local response norm: the hand-written LRN against ``torch.nn.LocalResponseNorm``.

Target: :class:`facerepro.models.local_response_norm.LocalResponseNorm` (size 5, alpha 1e-4,
beta 0.75, k 1, NN2's settings). Baseline: torch's module, same input, same process.

Rows:
- the layer alone, forward + backward and forward only (no grad), at NN2's two norm layers'
  shapes for the default config (width 0.25 on 56x48 crops, batch 64: 16 and 48 channels at 14x12)
  and at paper width (1.0 at 224x224, batch 16: 64 and 192 channels at 56x56), channels_last;
- a whole NN2 training step at the default config's size (forward, triplet-free stand-in loss
  ``sum(f . r)`` for a fixed random r, backward, AdaGrad step), with either LRN in the net.
``speedup`` = baseline time / target time (best of several interleaved rounds);
``max_abs_diff`` compares the two outputs (the step rows: the embeddings).
One torch thread, as every CPU job of ``make run`` has.

Run from the repository root: ``python bench/bench_lrn.py [--quick]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, parse_args, report  # noqa: E402

from facerepro.models.facenet import InceptionNN2  # noqa: E402
from facerepro.models.local_response_norm import LocalResponseNorm  # noqa: E402

NN2_LRN = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}
CROP = (56, 48)         # the default config's crops (align.scale 0.5)


def _channels_last(*shape: int) -> torch.Tensor:
    return torch.randn(shape).contiguous(memory_format=torch.channels_last)


def layer_rows(shapes: list[tuple[str, tuple[int, ...]]], repeat: int, calls: int) -> list[dict]:
    ours, torchs = LocalResponseNorm(**NN2_LRN), nn.LocalResponseNorm(**NN2_LRN)
    rows = []
    for name, shape in shapes:
        x = (3 * _channels_last(*shape)).requires_grad_()
        upstream = _channels_last(*shape)

        def train(lrn: nn.Module, x: torch.Tensor = x, upstream: torch.Tensor = upstream) -> None:
            for _ in range(calls):
                lrn(x).backward(upstream)

        def infer(lrn: nn.Module, x: torch.Tensor = x) -> None:
            with torch.no_grad():
                for _ in range(calls):
                    lrn(x)

        with torch.no_grad():
            diff = float((ours(x) - torchs(x)).abs().max())
        for mode, fn in (("forward+backward", train), ("forward", infer)):
            base, _ = best_time(lambda fn=fn: fn(torchs), repeat)
            target, _ = best_time(lambda fn=fn: fn(ours), repeat)
            rows.append({"case": f"{name} {mode}", "shape": "x".join(map(str, shape)),
                         "torch_ms": 1e3 * base / calls, "ours_ms": 1e3 * target / calls,
                         "speedup": base / target,
                         "max_abs_diff": diff})
    return rows


def step_row(batch: int, repeat: int, steps: int) -> dict:
    nets = {}
    for lrn in ("torch", "ours"):
        torch.manual_seed(0)
        net = InceptionNN2(CROP, width=0.25).to(memory_format=torch.channels_last)
        if lrn == "torch":
            net.trunk.norm1 = nn.LocalResponseNorm(**NN2_LRN)
            net.trunk.norm2 = nn.LocalResponseNorm(**NN2_LRN)
        nets[lrn] = (net, torch.optim.Adagrad(net.parameters(), lr=0.002))
    x = _channels_last(batch, 3, *CROP)
    direction = torch.randn(batch, 128)

    def train(lrn: str) -> None:
        net, optimizer = nets[lrn]
        for _ in range(steps):
            loss = (net(x) * direction).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    with torch.no_grad():
        diff = float((nets["ours"][0](x) - nets["torch"][0](x)).abs().max())
    base, _ = best_time(lambda: train("torch"), repeat)
    target, _ = best_time(lambda: train("ours"), repeat)
    return {"case": "NN2 training step (default config)",
            "shape": f"{batch}x3x{CROP[0]}x{CROP[1]}",
            "torch_ms": 1e3 * base / steps, "ours_ms": 1e3 * target / steps,
            "speedup": base / target, "max_abs_diff": diff}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    torch.set_num_threads(1)
    if args.quick:
        shapes = [("default norm2", (2, 12, 7, 6))]
        rows = layer_rows(shapes, repeat=1, calls=1) + [step_row(2, repeat=1, steps=1)]
    else:
        shapes = [("default norm1", (64, 16, 14, 12)), ("default norm2", (64, 48, 14, 12)),
                  ("paper norm1", (16, 64, 56, 56)), ("paper norm2", (16, 192, 56, 56))]
        rows = layer_rows(shapes, repeat=5, calls=10) + [step_row(64, repeat=5, steps=3)]
    report("bench_lrn", rows, args.out)


if __name__ == "__main__":
    main()
