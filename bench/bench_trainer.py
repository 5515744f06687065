"""Training engine overhead: ``trainer.train`` steps/s against a bare PyTorch loop, same work.

Data: a synthetic aligned shard (uint8 56 x 48 x 3 crops, the default config's size; 3,000
images of 100 identities, split ``train``) written with ``write_shard`` to a temp directory,
and random 0/1 labels in a CelebA attribute file for the attribute net.

Target: :func:`facerepro.training.trainer.train` on a ``default_run`` (softmax, sphere4,
512-d, batch 64, SGD lr 0.05, flip on, one log and one checkpoint per call, fresh checkpoint
directory each call), i.e. the background batch loader, the finiteness check, the per-step
``loss.item()``, the schedule and tqdm. Its progress bar is wrapped to timestamp every step
(and read the loader's ``wait_s`` there), so steps/s is measured over the loop after its first
few steps up to the last one, without setup (shard hashing, git, model build), the last step
(final checkpoint, log and DVCLive) or the model save; ``call_s`` is the whole call.

Baseline: the same SphereNet and SoftmaxLoss (same seed), the same SGD settings and batch
size, batches gathered in the loop from the same memmap by a seeded permutation, flipped with
the trainer's ``flip_mask`` and normalised by ``models.to_input``; no thread, checkpoint or
logging: ``x = ...; loss = ...; zero_grad(); backward(); step()``.

Every call warms up a few steps before its timing starts; the loops run interleaved, one
call each per round over several rounds (other processes may share the cores), and the best
rate counts (the median is shown for the spread). ``overhead_pct`` = bare rate / trainer rate - 1;
``data_wait_pct`` is the time the trainer's loop waited on its loader, as a share of the timed
loop.

Variants, in the same rounds (``speedup`` = img/s over the fp32 eager trainer's, measured in the
same run): ``precision: bf16`` (autocast; on a CPU without native bf16 the trainer falls back
to fp32 and the row's ``precision`` says so), ``channels_last``, both, ``compile``
(torch.compile, Inductor with a fresh cache directory, so the first call compiles cold) and
``compile`` + bf16. ``compile_s`` = the first call's first step minus the steady step time
(cold cache); ``warm_compile_s`` the same for the later calls (the FX graph cache filled, as a
second job on the same machine finds it); ``payback_steps`` = ``compile_s`` over the seconds a
step saves against the eager trainer in the same precision (none where it saves nothing), to
compare with the run's ``iterations`` (``run_iterations``, from ``config/config.yaml``).

The same variants (bar compile + bf16) then run on each other net of the default config
(``config/config.yaml``: FaceNet's NN2 at a quarter width with triplets, DeepID2+ with Ident +
Verif, Compact with the pair loss, the attribute net with the cost-sensitive softmax), with each
run's own method, sampler, batch size and ``iterations``, on the same shard. torch runs on the
default config's ``cpu_threads`` (1: what each of its train jobs gets on the CPU),
``OMP_WAIT_POLICY=PASSIVE`` unless set (see below).

Run from the repository root: ``python bench/bench_trainer.py [--quick]``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

# With libgomp's default wait policy (spin after each parallel region) the comparison measured
# OpenMP scheduling more than the trainer on cores other processes share: spinning threads
# made either loop up to ~2x slower depending on the load. Passive waiting, set before torch
# loads libgomp, takes that out.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import parse_args, peak_rss_mb, report  # noqa: E402

from facerepro import losses, models  # noqa: E402
from facerepro.align.shards import read_shard, write_shard  # noqa: E402
from facerepro.config import default_run, load  # noqa: E402
from facerepro.training import precision, trainer  # noqa: E402
from facerepro.training.loader import flip_mask  # noqa: E402

HEIGHT, WIDTH = 56, 48


def make_shard(dest: Path, n_images: int, n_identities: int, seed: int = 0,
               height: int = HEIGHT, width: int = WIDTH) -> Path:
    """Random crops, identities round-robin, all in split ``train``."""
    rng = np.random.default_rng(seed)
    index = pd.DataFrame({"image_id": [f"bench/i{k}" for k in range(n_images)],
                          "identity": [f"p{k % n_identities:04d}" for k in range(n_images)],
                          "split": ["train"] * n_images})
    images = (rng.integers(0, 256, (height, width, 3), np.uint8) for _ in range(n_images))
    write_shard(dest, images, index, height, width)
    return dest


def write_attributes(shard: Path, dest: Path, n_attributes: int = 40, seed: int = 0) -> Path:
    """A CelebA attribute file giving every image of ``shard`` random 1 / -1 labels."""
    _, index = read_shard(shard)
    values = np.random.default_rng(seed).choice([-1, 1], (len(index), n_attributes))
    lines = [str(len(index)), " ".join(f"a{k}" for k in range(n_attributes))]
    lines += [f"{image.partition('/')[2]}.jpg " + " ".join(map(str, row))
              for image, row in zip(index["image_id"], values, strict=True)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines) + "\n")
    return dest.parent


class TimedBar:
    """Stands in for the trainer's ``tqdm``: the real bar, plus a timestamp and the loader's
    cumulative ``wait_s`` each time a batch is handed to the loop body, and once at the end."""

    last: TimedBar | None = None

    def __init__(self, iterable: Any, **kwargs: Any) -> None:
        self.bar = tqdm(iterable, **kwargs)
        self.loader = iterable
        self.stamps: list[float] = []
        self.waits: list[float] = []
        TimedBar.last = self

    def __iter__(self) -> Iterator[Any]:
        for item in self.bar:
            self._stamp()
            yield item
        self._stamp()

    def _stamp(self) -> None:
        self.stamps.append(time.perf_counter())
        self.waits.append(self.loader.wait_s)

    def __getattr__(self, name: str) -> Any:    # set_postfix and the like
        return getattr(self.bar, name)


def run_trainer(run: dict, shard: Path, work: Path, warmup: int, device: str = "cpu",
                dataset_root: Path | None = None) -> dict:
    """One ``train`` call; steps/s and data wait over steps ``warmup..end`` of its loop
    (``dataset_root``: where an attribute run's label file is).

    On CUDA the trainer's per-step ``loss.item()`` synchronises, so the stamps time the GPU.
    """
    work.mkdir(parents=True)
    start = time.perf_counter()
    with mock.patch.object(trainer, "tqdm", TimedBar):
        trainer.train("bench", run, shard, work / "model.pt", work / "model.json",
                      work / "ckpt", device, dataset_root=dataset_root)
    call_s = time.perf_counter() - start
    bar = TimedBar.last
    assert bar is not None and len(bar.stamps) == run["iterations"] + 1
    # The window ends where the last batch is handed over: the last step also writes the
    # final checkpoint and the log, once per run, which would swamp a short window on a GPU.
    loop_s = bar.stamps[-2] - bar.stamps[warmup]
    info = json.loads((work / "model.json").read_text())
    return {"steps_per_s": (run["iterations"] - 1 - warmup) / loop_s,
            "data_wait_pct": 100 * (bar.waits[-2] - bar.waits[warmup]) / loop_s,
            "first_step_s": bar.stamps[1] - bar.stamps[0], "call_s": call_s,
            "compute_s": info["compute_s"], "data_wait_s": info["data_wait_s"],
            "precision": info["precision"]}


def run_bare(run: dict, shard: Path, warmup: int, device: str = "cpu") -> dict:
    """The plain loop on the trainer's model, loss, optimizer settings and data, with the
    run's ``channels_last``, ``compile`` and ``precision`` switches. It never reads
    the loss back, so on CUDA it synchronises only before its last stamp."""
    dev = torch.device(device)
    images, index = read_shard(shard)
    positions, labels = trainer.training_rows(run, index)
    torch.manual_seed(run["seed"])
    model = models.build(run["net"], images.shape[1:3], run["embedding_dim"]).to(dev)
    loss_fn = losses.build(run["method"], run["embedding_dim"], labels).to(dev)
    params = [*model.parameters(), *loss_fn.parameters()]
    optimizer = torch.optim.SGD(params, lr=run["lr"], momentum=run["momentum"],
                                weight_decay=run["weight_decay"])
    layout = torch.channels_last if run["channels_last"] else torch.contiguous_format
    model.to(memory_format=layout)

    def objective(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(model(x), y)

    forward = torch.compile(objective) if run["compile"] else objective
    cast = precision.autocast(precision.resolve(run["precision"], dev, "bare"), dev)
    batch, steps = run["batch_size"], run["iterations"]
    rng = np.random.default_rng(run["seed"])
    order = np.empty(0, np.int64)
    model.train()
    stamps = []
    for step in range(steps):
        stamps.append(time.perf_counter())
        if len(order) < batch:                      # a new epoch, remainder dropped
            order = rng.permutation(len(positions))
        rows, order = np.sort(order[:batch]), order[batch:]
        crops = images[positions[rows]]             # ascending: sequential memmap reads
        mirrored = flip_mask(batch, run["seed"], step)
        crops[mirrored] = crops[mirrored, :, ::-1]
        x = models.to_input(crops, dev).contiguous(memory_format=layout)
        y = torch.from_numpy(labels[rows]).to(dev)
        with cast:
            loss = forward(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if dev.type == "cuda" and step + 1 == warmup:
            torch.cuda.synchronize()                # the timed window starts on an idle GPU
    if dev.type == "cuda":
        torch.cuda.synchronize()
    stamps.append(time.perf_counter())
    return {"steps_per_s": (steps - warmup) / (stamps[-1] - stamps[warmup]),
            "first_step_s": stamps[1] - stamps[0]}


def best(results: list[dict]) -> dict:
    """The fastest call's figures, the median rate (for the spread), and the first call's
    ``first_step_s`` (the cold one: compile, allocator and kernel warm-up)."""
    fastest = max(results, key=lambda r: r["steps_per_s"])
    median = float(np.median([r["steps_per_s"] for r in results]))
    return {**fastest, "median_steps_per_s": median, "first_step_s": results[0]["first_step_s"]}


DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
# The default config's runs on its other nets (sphere4's runs are the main rows).
OTHER_NETS = ("facenet", "deepid2plus", "compact_32x1", "attributes_cost_sensitive")
# Each variant sets every switch: the default config's runs set some themselves.
_EAGER = {"precision": "fp32", "channels_last": False, "compile": False}
VARIANTS = {"fp32": _EAGER,
            "bf16": {**_EAGER, "precision": "bf16"},
            "channels_last": {**_EAGER, "channels_last": True},
            "bf16 + channels_last": {**_EAGER, "precision": "bf16", "channels_last": True},
            "compile": {**_EAGER, "compile": True},
            "compile + bf16": {**_EAGER, "precision": "bf16", "compile": True}}
EAGER_OF = {"compile": "fp32", "compile + bf16": "bf16"}    # what a compiled variant must beat


def variant_rows(net: str, run: dict, results: dict[str, list[dict]], batch: int,
                 iterations: int) -> list[dict]:
    """One row per variant of ``run``: img/s, its ratio to the fp32 eager trainer's, and for
    compiled ones the compile time and the steps it takes to pay for itself against the eager
    trainer in the same precision."""
    base = best(results["fp32"])
    rows = []
    for name, calls in results.items():
        result = best(calls)
        row = {"net": net, "loop": f"trainer {name}", "steps": run["iterations"], **result,
               "img_s": result["steps_per_s"] * batch,
               "speedup": result["steps_per_s"] / base["steps_per_s"]}
        if "compile" in name:
            step_s = 1 / result["steps_per_s"]
            row["compile_s"] = result["first_step_s"] - step_s
            if len(calls) > 1:
                row["warm_compile_s"] = float(np.median([c["first_step_s"] for c in calls[1:]])
                                              ) - step_s
            saved = 1 / best(results[EAGER_OF[name]])["steps_per_s"] - step_s
            # None: a compiled step is no faster, so the compile never pays back
            row["payback_steps"] = row["compile_s"] / saved if saved > 0 else None
            row["run_iterations"] = iterations
        rows.append(row)
    return rows


def shortened(run: dict, steps: int, batch: int | None) -> dict:
    """A run of the default config cut to one timed call (``batch``: the quick shard's)."""
    return {**run, "iterations": steps, "log_every": steps, "checkpoint_every": steps,
            "eval_every": 0, "lr_steps": [10**6], **({"batch_size": batch} if batch else {})}


def sphere4_rows(shard: Path, work: Path, batch: int, steps: int, warmup: int, repeat: int,
                 variants: list[str], iterations: int, threads: int) -> list[dict]:
    """The bare loop and the trainer's variants on sphere4 (softmax), interleaved by round."""
    run = default_run(method="softmax", net="sphere4", train="synth/casia", embedding_dim=512,
                      batch_size=batch, iterations=steps, lr=0.05, lr_steps=[10**6],
                      log_every=steps, checkpoint_every=steps)
    bare_runs: list[dict] = []
    trainer_runs: dict[str, list[dict]] = {name: [] for name in variants}
    for round_ in range(repeat):                # interleaved: load drift hits every loop
        bare_runs.append(run_bare(run, shard, warmup))
        for name in variants:
            trainer_runs[name].append(run_trainer({**run, **VARIANTS[name]}, shard,
                                                  work / f"round{round_}-{name}", warmup))
    bare = best(bare_runs)
    trainer_rows = variant_rows("sphere4", run, trainer_runs, batch, iterations)
    eager = trainer_rows[0]
    eager["overhead_pct"] = 100 * (bare["steps_per_s"] / eager["steps_per_s"] - 1)
    return [{"net": "sphere4", "loop": "bare PyTorch fp32", "steps": steps, **bare,
             "img_s": bare["steps_per_s"] * batch, "threads": threads,
             "omp_wait": os.environ["OMP_WAIT_POLICY"], "size": f"{HEIGHT}x{WIDTH}"},
            *trainer_rows]


def net_rows(shard: Path, work: Path, name: str, run: dict, steps: int, warmup: int,
             repeat: int, variants: list[str], batch: int | None) -> list[dict]:
    """The trainer's variants on run ``name`` of the default config, interleaved by round."""
    short = shortened(run, steps, batch)
    labels = (write_attributes(shard, work / f"{name}-labels" / run["attributes_file"])
              if run["labels"] == "attributes" else None)
    calls: dict[str, list[dict]] = {v: [] for v in variants}
    for round_ in range(repeat):
        for variant in variants:
            calls[variant].append(run_trainer({**short, **VARIANTS[variant]}, shard,
                                              work / f"{name}-round{round_}-{variant}", warmup,
                                              dataset_root=labels))
    return variant_rows(run["net"], short, calls, short["batch_size"], run["iterations"])


def settings(quick: bool) -> dict:
    if quick:
        return {"n_images": 64, "n_ids": 8, "batch": 16, "steps": 4, "warmup": 1, "repeat": 1,
                "variants": ["fp32", "bf16", "channels_last"], "net_variants": ["fp32", "bf16"],
                "net_repeat": 1}
    # Short calls, several rounds: on shared cores the best of many short windows is closer to
    # the uncontended rate than the best of a few long ones. Each compiled call in a round
    # compiles again (from the warm cache after the first), which bounds the rounds.
    return {"n_images": 3_000, "n_ids": 100, "batch": 64, "steps": 20, "warmup": 3, "repeat": 2,
            "variants": list(VARIANTS), "net_variants": ["fp32", "bf16", "channels_last",
                                                          "bf16 + channels_last", "compile"],
            "net_repeat": 1}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    default = load(DEFAULT_CONFIG)
    torch.set_num_threads(default["cpu_threads"])
    s = settings(args.quick)
    default_runs = default["runs"]
    with tempfile.TemporaryDirectory(prefix="bench_trainer_") as tmp:
        tmp_dir = Path(tmp)
        # A fresh Inductor cache: the compile row's first call compiles from scratch.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_dir / "inductor")
        shard = make_shard(tmp_dir / "shard", s["n_images"], s["n_ids"])
        # Warmup steps are the first steps of each timed call; the timing starts after them.
        rows = sphere4_rows(shard, tmp_dir, s["batch"], s["steps"], s["warmup"], s["repeat"],
                            s["variants"], default_runs["softmax"]["iterations"],
                            default["cpu_threads"])
        for name in OTHER_NETS:
            rows += net_rows(shard, tmp_dir, name, default_runs[name], s["steps"], s["warmup"],
                             s["net_repeat"], s["net_variants"],
                             s["batch"] if args.quick else None)
        for row in rows:        # process-wide, so one figure: the whole bench's peak
            row["peak_rss_mb"] = peak_rss_mb()
    report("trainer", rows, args.out)


if __name__ == "__main__":
    main()
