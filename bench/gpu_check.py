"""The GPU path in one prepared run: MTCNN, training speed, exact resume, DDP, GPU leases and
features, each on CUDA against the CPU or against a bare PyTorch loop, in one process tree.

Made for a GPU machine that is lent for minutes: it needs only the machine's own Python (torch
with CUDA, numpy, pandas, pyarrow, opencv, scipy, scikit-learn, pyyaml, tqdm, plus jsonschema;
no Snakemake, DVC or faiss), ``PYTHONPATH=src`` and MTCNN's weights in
``resources/models/mtcnn``. Every check runs even when one before it fails (its row then says
why), checks that do not fit ``--budget-s`` are skipped and say so, and the result is written
as ``gpu_check.json`` and ``gpu_check.md`` in ``--out``, the table printed last.

1. ``mtcnn``: the two LFW photos of ``tests/data/lfw`` and SynthFaces wild images, detected on
   CUDA and on the CPU (all cores): faces matched by box, largest box and landmark difference
   in px (goal <= 0.5); images/s on each device at 16 images per call, best of 3.
2. ``train``: sphere20 and sphere64 at 112x96, batch 256, A-Softmax, SGD, bf16 autocast, random
   uint8 crops: :func:`trainer.train` against ``bench_trainer.run_bare`` (same net, loss, data,
   optimizer and switches; goal trainer / bare >= 0.95), eager and channels_last, then with
   ``torch.compile`` if the budget allows. Model FLOPs utilisation = FLOPs of one step, counted
   by ``torch.utils.flop_counter``, times steps/s, over the bf16 matrix-product rate measured
   here (8192^3, mean of 10 after 3 warm-ups).
3. ``resume``: a short sphere20 run SIGKILLed between two checkpoints and started again, against
   the same run uninterrupted, each in a fresh process: identical weights with ``deterministic:
   true``; the largest weight difference without it (and between two uninterrupted runs).
4. ``ddp``: the same run under ``torchrun --nproc_per_node=1`` (NCCL on CUDA, so through
   DistributedDataParallel) against one process; and the per-rank split of the loader: the
   slices of ranks 0..3 put together are the one-process batch.
5. ``lease``: two processes ask :func:`gpu.lease` for the one GPU at once: the second waits
   until the first lets go; each sees exactly device 0.
6. ``features``: 10,000 faces at 112x96 through a seeded sphere20, flipped and concatenated, on
   CUDA and (the first 1,000) on the CPU: smallest cosine between the two (goal >= 0.999; CUDA
   convolutions use TF32 by default) and the speed-up.

``--device cpu --quick`` runs every check on the CPU with tiny sizes, in under a minute, so CI
keeps the script working while no GPU is at hand; its figures mean nothing.

Run from the repository root: ``PYTHONPATH=src python3 bench/gpu_check.py --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import cv2
import numpy as np
import torch

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from bench_trainer import make_shard, run_bare, run_trainer  # noqa: E402

from facerepro import features, models, paths  # noqa: E402
from facerepro.align import mtcnn, mtcnn_weights, quality  # noqa: E402
from facerepro.align.mtcnn import MTCNN, Settings  # noqa: E402
from facerepro.config import default_run  # noqa: E402
from facerepro.training import gpu, launch, samplers, trainer  # noqa: E402
from facerepro.training.loader import BatchLoader  # noqa: E402

LFW_PHOTOS = ROOT / "tests" / "data" / "lfw" / "images"
Row = dict[str, Any]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/gpu_check"))
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a dry run)")
    parser.add_argument("--budget-s", type=float, default=400.0,
                        help="wall time after which the optional checks are skipped")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser.parse_args()


def row(check: str, measure: str, value: Any, goal: str = "", ok: bool | None = None) -> Row:
    return {"check": check, "measure": measure, "value": value, "goal": goal,
            "ok": "" if ok is None else ("yes" if ok else "NO")}


def synchronize(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# 1. MTCNN ---------------------------------------------------------------------------------

def _gaps(cpu_faces: list, dev_faces: list) -> tuple[np.ndarray, int]:
    """Per face matched by box, the largest box or landmark difference (px); and the number of
    faces found on one device only."""
    gaps, unmatched = [0.0], 0
    for a, b in zip(cpu_faces, dev_faces, strict=True):
        unmatched += abs(len(a.boxes) - len(b.boxes))
        for k in range(min(len(a.boxes), len(b.boxes))):
            j = int(np.abs(b.boxes - a.boxes[k]).max(1).argmin())
            gaps.append(max(float(np.abs(b.boxes[j] - a.boxes[k]).max()),
                            float(np.abs(b.landmarks[j] - a.landmarks[k]).max())))
    return np.array(gaps), unmatched


def check_mtcnn(dev: torch.device, quick: bool) -> list[Row]:
    weights = mtcnn_weights.ensure(Path(paths.mtcnn_weights("pnet")).parent)
    photos = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
              for p in sorted(LFW_PHOTOS.glob("*.jpg"))]
    synth, truth = quality.synthfaces_sample(8 if quick else 200, seed=0)
    settings = Settings(batch_size=16)
    on_cpu, on_dev = MTCNN(weights, "cpu", settings), MTCNN(weights, dev, settings)
    rows = []
    for name, images in (("LFW photos", photos), ("SynthFaces", synth)):
        cpu_faces = on_cpu.detect(images)
        gaps, unmatched = _gaps(cpu_faces, on_dev.detect(images))
        found = sum(len(f.boxes) for f in cpu_faces)
        rows += [row("mtcnn", f"{name}: faces (cpu), found on one device only",
                     f"{found}, {unmatched}", "0 on one only", unmatched == 0),
                 row("mtcnn", f"{name}: largest box or landmark difference, px (faces > 0.5)",
                     f"{gaps.max():.3g} ({(gaps > 0.5).sum()})", "<= 0.5", gaps.max() <= 0.5)]
    for detector in (on_cpu, on_dev):       # equal quality, or one device's faces are worse
        found = quality.summary(quality.detected_landmarks(detector, synth), truth)
        rows.append(row("mtcnn", f"SynthFaces on {detector.device.type}: detection rate, "
                                 f"mean NME vs the true landmarks",
                        f"{found['detection_rate']:.4f}, {found['nme_mean']:.5f}"))
    rows.append(row("mtcnn", "P-Net face probability over the pyramid: largest |cpu - "
                             f"{dev.type}| (cells across the threshold)", pnet_gap(on_cpu, on_dev,
                                                                                  synth[:16])))
    for detector in (on_cpu, on_dev):
        def detect_all(detector: MTCNN = detector) -> None:
            for start in range(0, len(synth), 16):
                detector.detect(synth[start:start + 16])
            synchronize(detector.device)

        detect_all()
        seconds = min(_timed(detect_all)[0] for _ in range(1 if quick else 3))
        rows.append(row("mtcnn", f"images/s on {detector.device.type}, 16 per call "
                                 f"({torch.get_num_threads()} CPU threads)",
                        len(synth) / seconds))
    return rows


@torch.inference_mode()
def pnet_gap(on_cpu: MTCNN, on_dev: MTCNN, images: list[np.ndarray]) -> str:
    """Where two devices part, at the cascade's first stage: P-Net's largest probability
    difference over every pyramid level, and how many cells fall on different sides of the
    stage's threshold."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    threshold = on_cpu.settings.thresholds[0]
    gap, crossed = 0.0, 0
    for scale in mtcnn.pyramid_scales(*batch.shape[2:], on_cpu.settings.min_face,
                                      on_cpu.settings.factor):
        level = mtcnn._normalise(mtcnn.resize_area(batch, scale))
        a = on_cpu.pnet(level)[0]
        b = on_dev.pnet(level.to(on_dev.device))[0].cpu()
        gap = max(gap, float((a - b).abs().max()))
        crossed += int(((a >= threshold) != (b >= threshold)).sum())
    return f"{gap:.3g} ({crossed})"


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# 2. Training throughput -------------------------------------------------------------------

def matmul_rate(dev: torch.device, quick: bool) -> float:
    """FLOP/s of an n^3 matrix product: bf16 on CUDA, fp32 on the CPU."""
    n = 512 if quick else 8192
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=dev, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    synchronize(dev)
    reps = 10
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    synchronize(dev)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def step_flops(run: dict, dev: torch.device, labels: np.ndarray, size: tuple[int, int]) -> int:
    """FLOPs of one training step's forward and backward pass (counted, not timed)."""
    from torch.utils.flop_counter import FlopCounterMode

    from facerepro import losses

    model = models.build(run["net"], size, run["embedding_dim"]).to(dev)
    loss_fn = losses.build(run["method"], run["embedding_dim"], labels).to(dev)
    x = torch.randn(run["batch_size"], 3, *size, device=dev)
    y = torch.from_numpy(labels[:run["batch_size"]]).to(dev)
    with FlopCounterMode(display=False) as counter:
        loss_fn(model(x), y).backward()
    return counter.get_total_flops()


def check_training(dev: torch.device, quick: bool, work: Path, deadline: float) -> list[Row]:
    size = (56, 48) if quick else (112, 96)
    nets = ["sphere4"] if quick else ["sphere20", "sphere64"]
    batch, steps, warmup = (16, 6, 2) if quick else (256, 40, 8)
    shard = make_shard(work / "train_shard", 4 * batch, batch // 2, height=size[0],
                       width=size[1])
    labels = np.arange(4 * batch) % (batch // 2)
    peak = matmul_rate(dev, quick)
    rows = [row("train", f"{'bf16' if dev.type == 'cuda' else 'fp32'} matrix product, TFLOP/s",
                peak / 1e12)]
    variants = [{}, {"channels_last": True}]
    if not quick:           # compiling takes most of a minute even on the CPU's tiny nets
        variants += [{"compile": True}, {"compile": True, "channels_last": True}]
    # Compiled rows last: each compiles twice (trainer and bare loop) and may not fit.
    plan = [(net, v) for v in variants for net in nets]
    for net, variant in plan:
        name = f"{net} {'+'.join(variant) or 'eager'}"
        if time.monotonic() > deadline - (90 if "compile" in variant else 20):
            rows.append(row("train", f"{name}: skipped", "over the time budget"))
            continue
        # lr 1e-5: a speed measurement. sphere64 from its random init diverges at 0.01 within
        # two steps (in float32 on the CPU too), and the trainer stops on a non-finite loss.
        run = default_run(method="a_softmax", net=net, train="synth/casia", embedding_dim=512,
                          batch_size=batch, iterations=steps, lr=1e-5, lr_steps=[10**6],
                          log_every=steps, checkpoint_every=steps, **variant)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(work / f"inductor-{net}")
        bare = run_bare(run, shard, warmup, dev.type)
        ours = run_trainer(run, shard, work / f"trainer-{net}-{'-'.join(variant)}", warmup,
                           dev.type)
        ratio = ours["steps_per_s"] / bare["steps_per_s"]
        mfu = step_flops(run, dev, labels, size) * ours["steps_per_s"] / peak
        rows += [row("train", f"{name}: trainer img/s (bare loop)",
                     f"{ours['steps_per_s'] * batch:.0f} ({bare['steps_per_s'] * batch:.0f})"),
                 row("train", f"{name}: trainer / bare", ratio, ">= 0.95",
                     None if quick else ratio >= 0.95),
                 row("train", f"{name}: model FLOPs utilisation", mfu)]
    return rows


# 3-4. Resume and DDP: training in fresh processes -----------------------------------------

def small_run(quick: bool, **settings: Any) -> tuple[dict, tuple[int, int]]:
    size = (56, 48) if quick else (112, 96)
    run = default_run(method="a_softmax", net="sphere4" if quick else "sphere20",
                      train="synth/casia", embedding_dim=512, batch_size=16 if quick else 64,
                      iterations=8 if quick else 40, lr=0.01, lr_steps=[10**6],
                      log_every=2 if quick else 10, checkpoint_every=2 if quick else 10,
                      **settings)
    return run, size


def train_in_child(run: dict, shard: Path, work: Path, device: str, kill_at: int = 0,
                   torchrun: bool = False) -> int:
    """Train ``run`` in a fresh process, or through :func:`launch.torchrun` with one worker;
    with ``kill_at`` it SIGKILLs itself when batch ``kill_at`` is handed to the loop. Returns
    the exit code."""
    if torchrun:
        try:
            launch.torchrun(1, {"run_name": "bench", "run": run, "shard_dir": shard,
                                "model_path": work / "model.pt",
                                "info_path": work / "model.json",
                                "checkpoint_dir": work / "ckpt", "device": device})
        except subprocess.CalledProcessError as exc:
            return exc.returncode
        return 0
    work.mkdir(parents=True, exist_ok=True)
    spec = work.with_suffix(".json")
    spec.write_text(json.dumps({"run": run, "shard": str(shard), "work": str(work),
                                "device": device, "kill_at": kill_at}))
    done = subprocess.run([sys.executable, __file__, "--child", "train", str(spec)], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode not in (0, -signal.SIGKILL):
        print(done.stderr[-3000:], file=sys.stderr)
    return done.returncode


def child_train(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    work = Path(spec["work"])

    class KillingBar:
        def __init__(self, iterable: Any, **_: Any) -> None:
            self.iterable = iterable

        def __iter__(self) -> Any:
            for batch in self.iterable:
                if spec["kill_at"] and batch.step == spec["kill_at"]:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield batch

        def set_postfix(self, **_: Any) -> None:
            pass

    with mock.patch.object(trainer, "tqdm", KillingBar):
        trainer.train("bench", spec["run"], spec["shard"], work / "model.pt",
                      work / "model.json", work / "ckpt", spec["device"])


def weight_gap(a: Path, b: Path) -> float:
    """Largest absolute difference between the weights of two saved models."""
    sa = torch.load(a, map_location="cpu", weights_only=True)["state_dict"]
    sb = torch.load(b, map_location="cpu", weights_only=True)["state_dict"]
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


def check_resume(dev: torch.device, quick: bool, work: Path) -> list[Row]:
    rows = []
    run, size = small_run(quick)
    shard = make_shard(work / "resume_shard", 8 * run["batch_size"], 16, height=size[0],
                       width=size[1])
    for deterministic in (True,) if quick else (True, False):
        run["deterministic"] = deterministic
        tag = "deterministic" if deterministic else "default kernels"
        base = work / f"resume-{deterministic}"
        straight, again, killed = base / "straight", base / "again", base / "killed"
        kill_at = run["checkpoint_every"] * 2 + run["checkpoint_every"] // 2
        codes = [train_in_child(run, shard, straight, dev.type),
                 train_in_child(run, shard, killed, dev.type, kill_at=kill_at)]
        saved = torch.load(killed / "ckpt" / "latest.pt", weights_only=True)["step"]
        codes.append(train_in_child(run, shard, killed, dev.type))
        if not deterministic:
            codes.append(train_in_child(run, shard, again, dev.type))
        if codes[1] != -signal.SIGKILL or {codes[0], *codes[2:]} != {0}:
            raise RuntimeError(f"training children exited {codes} (expected 0, -9, 0...)")
        gap = weight_gap(straight / "model.pt", killed / "model.pt")
        rows.append(row("resume", f"{tag}: killed at step {kill_at}, resumed from {saved}: "
                                  f"largest weight difference", gap,
                        "0" if deterministic else "", gap == 0 if deterministic else None))
        if not deterministic:
            rows.append(row("resume", f"{tag}: two uninterrupted runs, largest weight difference",
                            weight_gap(straight / "model.pt", again / "model.pt")))
    return rows


def check_ddp(dev: torch.device, quick: bool, work: Path) -> list[Row]:
    run, size = small_run(quick, deterministic=True)
    shard = make_shard(work / "ddp_shard", 8 * run["batch_size"], 16, height=size[0],
                       width=size[1])
    one, ddp = work / "ddp-single", work / "ddp-torchrun"
    codes = [train_in_child(run, shard, one, dev.type),
             train_in_child(run, shard, ddp, dev.type, torchrun=True)]
    if codes != [0, 0]:
        raise RuntimeError(f"training children exited {codes}")
    info = json.loads((ddp / "model.json").read_text())
    gap = weight_gap(one / "model.pt", ddp / "model.pt")
    scale = max(float(t.abs().max()) for t in torch.load(one / "model.pt", weights_only=True)
                ["state_dict"].values())
    rows = [row("ddp", f"torchrun x1 ({info['device']}, world {info['world_size']}) vs one "
                       "process: largest weight difference / largest weight", gap / scale,
                "<= 0.004 (bf16)", gap / scale <= 0.004)]
    labels = np.arange(64) % 8
    split_ok = True
    for step in range(3):
        whole = _batch(labels, step, 0, 1)
        parts = [_batch(labels, step, rank, 4) for rank in range(4)]
        split_ok &= all(torch.equal(torch.cat([p[i] for p in parts]), whole[i]) for i in (0, 1))
    rows.append(row("ddp", "ranks 0..3 of 4: slices put together = the one-process batch",
                    split_ok, "True", split_ok))
    return rows


def _batch(labels: np.ndarray, step: int, rank: int, world: int) -> tuple[torch.Tensor, ...]:
    images = np.random.default_rng(0).integers(0, 256, (len(labels), 8, 8, 3), np.uint8)
    sampler = samplers.build("identity", labels, 16, 0, images_per_identity=4)
    loader = BatchLoader(images, np.arange(len(labels)), labels, sampler, 0, step + 1, True, 0,
                         rank, world, prefetch=0)
    last = list(loader)[-1]
    return last.x, last.y


# 5. GPU leases ----------------------------------------------------------------------------

def child_lease(lock_dir: str, hold_s: str, out: str, device: str, peer: str = "") -> None:
    """Take the GPU lease and hold it ``hold_s`` seconds; with ``peer``, only after that
    process has said it is asking too (so the two requests overlap whatever start-up costs)."""
    started = time.time()
    Path(out).with_suffix(".asked").touch()
    with gpu.lease(1, lock_dir, device_count=None if device == "cuda" else 1, poll_s=0.05):
        acquired = time.time()
        Path(out).with_suffix(".held").touch()
        seen = os.environ[gpu.VISIBLE]
        count = 1
        if device == "cuda":
            torch.ones(1, device="cuda").sum().item()
            count = torch.cuda.device_count()
        deadline = time.time() + 60
        while peer and not Path(peer).with_suffix(".asked").exists() and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(float(hold_s))
        released = time.time()
    Path(out).write_text(json.dumps({"asked": started, "acquired": acquired,
                                     "released": released, "visible": seen, "count": count}))


def check_lease(dev: torch.device, quick: bool, work: Path) -> list[Row]:
    env = {k: v for k, v in os.environ.items() if k != gpu.VISIBLE}
    hold = 0.5 if quick else 1.0
    outs = [work / f"lease{i}.json" for i in range(2)]
    procs = []
    for out, peer in zip(outs, [outs[1], ""], strict=True):    # the second starts once the
        procs.append(subprocess.Popen(                           # first holds the GPU
            [sys.executable, __file__, "--child", "lease", str(work / "locks"), str(hold),
             str(out), dev.type, str(peer)], cwd=ROOT, env=env))
        while not out.with_suffix(".held").exists() and procs[-1].poll() is None:
            time.sleep(0.02)
    if [p.wait() for p in procs] != [0, 0]:
        raise RuntimeError("a lease child failed")
    first, second = (json.loads(o.read_text()) for o in outs)
    waited = second["acquired"] - second["asked"]
    apart = second["asked"] < first["released"] <= second["acquired"]
    sees = {first["visible"], second["visible"]} == {"0"} and first["count"] == second["count"] == 1
    return [row("lease", "second asked while the first held it, waited s (hold s)",
                f"{waited:.2f} ({hold})", "waits, never shares", apart),
            row("lease", "each saw CUDA_VISIBLE_DEVICES=0 and one device", sees, "True", sees)]


# 6. Features ------------------------------------------------------------------------------

def check_features(dev: torch.device, quick: bool) -> list[Row]:
    n, n_cpu, size = (64, 32, (56, 48)) if quick else (10_000, 1_000, (112, 96))
    images = np.random.default_rng(0).integers(0, 256, (n, *size, 3), np.uint8)
    torch.manual_seed(0)
    model = models.build("sphere4" if quick else "sphere20", size, 512).eval()
    cpu_s, on_cpu = _timed(lambda: features.embed(model, images[:n_cpu])["output"])
    model.to(dev)
    features.embed(model, images[:256], device=dev)                  # warm-up
    dev_s, on_dev = _timed(lambda: features.embed(model, images, device=dev)["output"])
    on_dev = on_dev[:n_cpu]
    cosine = (on_cpu * on_dev).sum(1) / (np.linalg.norm(on_cpu, axis=1)
                                         * np.linalg.norm(on_dev, axis=1))
    return [row("features", f"smallest cosine, {dev.type} vs cpu ({n_cpu} faces)",
                float(cosine.min()), ">= 0.999", cosine.min() >= 0.999),
            row("features", f"faces/s on {dev.type} ({n} faces) / on cpu "
                            f"({torch.get_num_threads()} threads)",
                f"{n / dev_s:.0f} / {n_cpu / cpu_s:.0f}"),
            row("features", "speed-up", (n / dev_s) / (n_cpu / cpu_s))]


# ------------------------------------------------------------------------------------------

def write(out: Path, rows: list[Row], meta: dict) -> str:
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| check | measure | value | goal | ok |", "|---|---|---|---|---|"]
    for r in rows:
        value = f"{r['value']:.4g}" if isinstance(r["value"], float) else str(r["value"])
        lines.append(f"| {r['check']} | {r['measure']} | {value} | {r['goal']} | {r['ok']} |")
    table = "\n".join([f"{k}: {v}  " for k, v in meta.items()] + ["", *lines])
    for name, text in (("gpu_check.json", json.dumps({**meta, "rows": rows}, indent=2,
                                                       default=str)),
                       ("gpu_check.md", table + "\n")):
        tmp = out / f"{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)
    return table


def main() -> None:
    args = parse_args()
    if args.child:
        {"train": child_train, "lease": child_lease}[args.child[0]](*args.child[1:])
        return
    started = time.monotonic()
    deadline = started + args.budget_s
    torch.set_num_threads(os.cpu_count() or 1)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device is visible: run with --device cpu --quick for a dry run")
    meta = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "torch": torch.__version__, "cuda": torch.version.cuda, "cpu_threads":
            torch.get_num_threads(), "quick": args.quick}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        checks = [("mtcnn", lambda: check_mtcnn(dev, args.quick)),
                  ("features", lambda: check_features(dev, args.quick)),
                  ("lease", lambda: check_lease(dev, args.quick, work)),
                  ("resume", lambda: check_resume(dev, args.quick, work)),
                  ("ddp", lambda: check_ddp(dev, args.quick, work)),
                  ("train", lambda: check_training(dev, args.quick, work, deadline))]
        for name, check in checks:
            tick = time.monotonic()
            try:
                rows += check()
            except Exception as exc:        # one broken check must not cost the others
                traceback.print_exc()
                rows.append(row(name, "FAILED", f"{type(exc).__name__}: {exc}"[:300], ok=False))
            rows.append(row(name, "wall time, s", time.monotonic() - tick))
            meta["wall_s"] = round(time.monotonic() - started, 1)
            table = write(args.out, rows, meta)     # after each check: a killed run keeps it
    print(table)


if __name__ == "__main__":
    main()
