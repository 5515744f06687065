"""One training loop for every method: config in, ``model.pt`` + ``model.json`` out.

The loop is deliberately plain (insightface style): take a batch, forward, loss, step. The
run's config names the net, the loss (``method``), the sampler, the optimizer (SGD with
momentum, or AdaGrad as FaceNet) and the schedule (divide by 10 at ``lr_steps``, or on a
plateau of the training loss). All state that shapes the rest of the run (weights, loss
parameters, optimizer, schedule, sampler position, RNG states, step) is checkpointed
atomically, so a killed run restarted on the same config ends with bit-identical weights.

The forward pass runs in the run's ``precision`` (``training.precision``: fp32, or bf16
autocast where the device computes bf16 natively); under ``torchrun`` the
objective is wrapped in DistributedDataParallel and each rank trains on its slice of the
global batch. Metrics go to the log, a progress bar, and DVCLive.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from facerepro import features, losses, models
from facerepro.align.shards import IMAGES, INDEX, read_shard
from facerepro.atomic import write_json
from facerepro.config import FITTED_METHODS, digest
from facerepro.data.download import sha256_of
from facerepro.data.imbalance import TRAIN, power_law_faces
from facerepro.data.protocols import HOLDOUT, attributes_of
from facerepro.training import checkpoint, precision, samplers
from facerepro.training.gpu import resolve_device
from facerepro.training.loader import BatchLoader

if TYPE_CHECKING:
    from dvclive import Live

log = logging.getLogger(__name__)
LIVE_DIR = "dvclive"            # beside the checkpoints: results/models/{run}/dvclive

# Keys that do not change the trajectory so far: extending a run is a valid resume. The
# plateau schedule steps on logging windows, so for it ``log_every`` shapes the run.
RESUMABLE_KEYS = ("iterations", "log_every", "checkpoint_every", "eval_every")


def resumable_keys(run: dict) -> tuple[str, ...]:
    if run["schedule"] == "plateau":
        return tuple(k for k in RESUMABLE_KEYS if k != "log_every")
    return RESUMABLE_KEYS


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def training_rows(run: dict, index: pd.DataFrame, dataset_root: str | Path | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Shard positions of split ``train`` and their labels: contiguous integer identities (n,),
    or the 0/1 attributes (n, A) of ``labels: attributes``, read from the dataset's attribute
    file under ``dataset_root``. ``imbalance`` keeps the power-law subsample's training faces.
    """
    train = index[index["split"] == "train"]
    if "imbalance" in run:
        faces = power_law_faces(index, run["imbalance"])
        train = faces[faces["role"] == TRAIN]
    if run["labels"] == "attributes":
        if dataset_root is None:
            raise ValueError("labels: attributes needs the extracted dataset's attribute file")
        path = Path(dataset_root) / run["attributes_file"]
        table, listed = attributes_of(train["image_id"].to_numpy(), path)
        if not listed.all():
            missing = train["image_id"].to_numpy()[~listed]
            raise ValueError(f"{path} has no attributes for {len(missing)} training faces, "
                             f"e.g. {missing[0]}; is it this dataset's attribute file?")
        return train.index.to_numpy(), table.to_numpy(np.int64)
    labels, _ = train["identity"].factorize(sort=True)
    return train.index.to_numpy(), labels.astype(np.int64)


def initialise(model: nn.Module, init_path: str | Path) -> None:
    """Start from another run's weights (``init_from``); the nets must match exactly."""
    source = models.load(init_path)
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as exc:
        raise ValueError(f"{init_path} holds another net than this run's: init_from must name "
                         f"a run with the same net, net_options, template and embedding_dim"
                         ) from exc


class Objective(nn.Module):
    """Net plus loss as one module, so DDP synchronises the loss's parameters too.

    A loss that reads more of the net than its output (DeepID2+'s layer-wise supervision)
    has ``forward_from(model, x, y)``; any other is called on the net's output, in fp32 also
    under bf16 autocast: bf16 resolves a cosine to ~4e-3, and CLMLE's margins (Eq. 9) are
    1e-4 and below, so in bf16 the loss could not see them.
    """

    def __init__(self, model: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        forward_from = getattr(self.loss, "forward_from", None)
        if forward_from is not None:
            return forward_from(self.model, x, y)
        embeddings = self.model(x)
        with torch.autocast(x.device.type, enabled=False):
            return self.loss(embeddings.float(), y)


def build_optimizer(run: dict, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The run's optimizer; on the CPU, torch's fused kernel: one pass over each tensor instead
    of one per operation, 3.5x (SGD) and 4x (Adagrad) faster on DeepID2+'s 13M weights at one
    thread. The update is the same; the kernel's scalar tail rounds a few elements an ulp
    differently (tests/test_training.py). CUDA keeps torch's default, multi-tensor kernels."""
    fused = True if all(p.device.type == "cpu" for p in params) else None
    if run["optimizer"] == "adagrad":
        return torch.optim.Adagrad(params, lr=run["lr"], weight_decay=run["weight_decay"],
                                   fused=fused)
    return torch.optim.SGD(params, lr=run["lr"], momentum=run["momentum"],
                           weight_decay=run["weight_decay"], fused=fused)


def build_schedule(run: dict, optimizer: torch.optim.Optimizer
                   ) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped every iteration (``step``), or after every full logging window on the window's
    mean loss over all ranks (``plateau``)."""
    if run["schedule"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.1, patience=run["plateau_patience"])
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, run["lr_steps"], gamma=0.1)


def train(run_name: str, run: dict, shard_dir: str | Path, model_path: str | Path,
          info_path: str | Path, checkpoint_dir: str | Path, device: str = "auto",
          dataset_root: str | Path | None = None, init_path: str | Path | None = None) -> dict:
    """Train one run; returns what is written to ``model.json`` (rank 0 writes the files).

    ``dataset_root``: the extracted training set (its attribute file, for ``labels:
    attributes``); ``init_path``: the model of the run named by ``init_from``.
    """
    started = time.time()
    rank, world = _world()
    dev = resolve_device(device)
    if run["deterministic"]:
        use_deterministic(dev)
    torch.manual_seed(run["seed"])
    images, index = read_shard(shard_dir)
    positions, labels = training_rows(run, index, dataset_root)
    input_size = images.shape[1:3]
    model = models.build(run["net"], input_size, run["embedding_dim"],
                         **run["net_options"])
    if init_path is not None:
        initialise(model, init_path)
    model.to(dev)

    if run["method"] in FITTED_METHODS:
        fit_rows = np.random.default_rng(run["seed"]).permutation(positions)[:run["pca_images"]]
        model.fit(models.to_input(images[np.sort(fit_rows)]).numpy(), seed=run["seed"])
        stats = {"steps": 0, "final_loss": None}
    else:
        settings = {k: v for k, v in run.items() if k not in resumable_keys(run)}
        fingerprint = digest([settings, sha256_of(Path(shard_dir) / IMAGES),
                              sha256_of(Path(shard_dir) / INDEX),
                              init_path and sha256_of(init_path)])
        stats = _fit(run, model, images, positions, labels, dev, Path(checkpoint_dir),
                     fingerprint, (images, index[index["split"] == HOLDOUT]),
                     precision.resolve(run["precision"], dev, run_name))
    info = {"run": run_name, "config_digest": digest(run), "config": run,
            "commit": git_commit(), **stats, "train_images": len(positions),
            "classes": int(labels.max()) + 1 if labels.ndim == 1 else labels.shape[1],
            "init_from": run.get("init_from"), "device": str(dev),
            "world_size": world, "wall_time_s": round(time.time() - started, 1)}
    if rank == 0:
        models.save(model.cpu(), run["net"], input_size, model_path, run["net_options"])
        write_json(info_path, info)
    return info


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _world() -> tuple[int, int]:
    if _distributed():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def use_deterministic(dev: torch.device) -> None:
    """Deterministic kernels only (``deterministic: true``): an op without one raises.

    cuBLAS needs a fixed workspace for reproducible matrix products; the variable is read when
    its handle is created, i.e. at this process's first matrix product on the device.
    """
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True)


def _rng_state(dev: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if dev.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(dev)
    return state


def _set_rng_state(state: dict, dev: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if dev.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], dev)


def _fit(run: dict, model: nn.Module, images: np.ndarray, positions: np.ndarray,
         labels: np.ndarray, dev: torch.device, checkpoint_dir: Path, fingerprint: str,
         holdout: tuple[np.ndarray, pd.DataFrame], arithmetic: str) -> dict:
    """The loop; returns steps, the last window's mean loss, compute and data-wait seconds and
    the ``precision`` it trained in (``arithmetic``, resolved by ``precision.resolve``).

    ``holdout`` (images, index rows of held-out people) feeds the ``eval_every`` check.

    A checkpoint is resumed only when its ``fingerprint`` (run settings and training data)
    matches, so new data or a changed config never continues an old run.
    """
    rank, world = _world()
    loss_fn = losses.build(run["method"], run["embedding_dim"], labels, run["loss_options"],
                           getattr(model, "supervised_layers", 1)).to(dev)
    objective = Objective(model, loss_fn)
    optimizer = build_optimizer(run, list(objective.parameters()))
    schedule = build_schedule(run, optimizer)
    # CLMLE's clustering settings sit in a block of their own in the run; its sampler takes them.
    sampler = samplers.build(run["sampler"], labels, run["batch_size"], run["seed"],
                             **run["sampler_options"], **run.get("clustering", {}))
    labels = getattr(sampler, "targets", labels)
    refresh = getattr(sampler, "refresh", None)       # see samplers.Sampler
    if world > 1:
        _check_share(run, world)
    step = 0
    window: list[float] = []
    state = checkpoint.load(checkpoint_dir)
    if state is not None and state.get("fingerprint") != fingerprint:
        log.warning("checkpoint in %s was made for other data or settings; starting afresh",
                    checkpoint_dir)
        state = None
    if state is not None:
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        sampler.load_state_dict(state["sampler"])
        _set_rng_state(state["rng"], dev)
        step, window = int(state["step"]), list(state["window"])
        if step > run["iterations"]:
            raise ValueError(f"the checkpoint in {checkpoint_dir} is at step {step}, past this "
                             f"run's iterations ({run['iterations']}); raise iterations or "
                             f"delete the checkpoint directory to train afresh")
        log.info("resumed from %s at step %d", checkpoint_dir, step)
    elif rank == 0:
        # a fresh run must not append to the series of the run it replaces
        shutil.rmtree(checkpoint_dir.parent / LIVE_DIR, ignore_errors=True)
    def training_features() -> np.ndarray:
        return features.embed(model, images, flip_merge="none", device=dev,
                              rows=positions)[features.OUTPUT]

    if refresh is not None and state is None:
        refresh(training_features, 0, loss_fn)

    if run["channels_last"]:
        model.to(memory_format=torch.channels_last)
    forward = objective
    if _distributed():          # also at world 1: torchrun with one worker runs the DDP path
        forward = nn.parallel.DistributedDataParallel(
            objective, device_ids=[dev.index] if dev.type == "cuda" else None)
    if run["compile"]:
        forward = torch.compile(forward)
    cast = precision.autocast(arithmetic, dev)

    live = _live(checkpoint_dir, run) if rank == 0 else None
    # A refreshed sampler's next batch depends on the step before, so it is drawn in step,
    # not ahead on the loader's thread.
    loader = BatchLoader(images, positions, labels, sampler, step, run["iterations"],
                         run["flip"], run["seed"], rank, world,
                         prefetch=0 if refresh is not None else 2)
    final_loss: float | None = None
    window_start, window_images, compute_s = time.perf_counter(), 0, 0.0
    objective.train()
    bar = tqdm(loader, initial=step, total=run["iterations"], mininterval=10, desc="train",
               disable=rank != 0)
    for batch in bar:
        tick = time.perf_counter()
        x = batch.x.to(dev, non_blocking=True)
        if run["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        y = batch.y.to(dev, non_blocking=True)
        with cast:
            loss = forward(x, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {batch.step + 1}: training diverged. Lower `lr` "
                f"of this run in the config; the last good checkpoint is in {checkpoint_dir}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if run["schedule"] == "step":
            schedule.step()
        window.append(loss.item())
        step = batch.step + 1
        if refresh is not None:
            refresh(training_features, step, loss_fn)
        compute_s += time.perf_counter() - tick
        window_images += len(batch.y) * world
        full_window = step % run["log_every"] == 0
        if full_window or step == run["iterations"]:
            final_loss = _mean_over_ranks(window, dev, world)
            window.clear()
            if run["schedule"] == "plateau" and full_window:
                schedule.step(final_loss)
            speed = window_images / (time.perf_counter() - window_start)
            lr = optimizer.param_groups[0]["lr"]
            # A loss may say how its terms act on the last batch (e.g. pairs inside a margin).
            diagnostics = getattr(loss_fn, "diagnostics", dict)()
            log.info("step %d loss %.4f lr %.4g %.1f images/s%s", step, final_loss, lr, speed,
                     "".join(f", {k} {v:.3f}" for k, v in diagnostics.items()))
            bar.set_postfix(loss=f"{final_loss:.3f}", img_s=f"{speed:.0f}")
            _log_live(live, step, {"train/loss": final_loss, "train/lr": lr,
                                   "train/images_per_s": speed,
                                   "train/data_wait_s": loader.wait_s,
                                   **{f"train/{k}": v for k, v in diagnostics.items()}})
            window_start, window_images = time.perf_counter(), 0
        evaluate = run["eval_every"] and (step % run["eval_every"] == 0
                                          or step == run["iterations"])
        if rank == 0 and evaluate:
            auc = holdout_auc(model, *holdout, dev, run["seed"])
            if auc is not None:
                log.info("step %d held-out verification AUC %.4f", step, auc)
                _log_live(live, step, {"eval/holdout_auc": auc})
        if rank == 0 and (step % run["checkpoint_every"] == 0 or step == run["iterations"]):
            checkpoint.save(checkpoint_dir, {
                "objective": objective.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                # A refreshed sampler also holds what this step changed in it.
                "sampler": sampler.state_dict() if refresh is not None else batch.sampler_state,
                "rng": _rng_state(dev), "step": step, "window": list(window),
                "fingerprint": fingerprint})
    if live is not None:
        live.end()
    model.eval()
    return {"steps": run["iterations"], "final_loss": final_loss, "precision": arithmetic,
            "compute_s": round(compute_s, 2), "data_wait_s": round(loader.wait_s, 2)}


def _check_share(run: dict, world: int) -> None:
    """Each rank trains on a contiguous slice of the global batch: keep pairs and P x K groups
    whole."""
    if run["sampler"] == "cluster":
        raise ValueError("CLMLE's loss compares every cluster of a batch with every other, so "
                         "its batch is not split over GPUs: set gpus: 1 for this run")
    share, remainder = divmod(run["batch_size"], world)
    group = {"pair": 2, "identity": run["sampler_options"].get("images_per_identity", 1)}
    unit = group.get(run["sampler"], 1)
    if remainder or share % unit:
        raise ValueError(f"batch_size {run['batch_size']} over {world} GPUs gives slices of "
                         f"{run['batch_size'] / world:g} images, which must be a whole multiple "
                         f"of {unit} for the {run['sampler']} sampler; change batch_size or gpus")


def _mean_over_ranks(values: list[float], dev: torch.device, world: int) -> float:
    """The window's mean loss over every rank's share, so all ranks take the same plateau
    decisions (and the log shows the global batch's loss)."""
    mean = float(np.mean(values))
    if world == 1:
        return mean
    t = torch.tensor([mean], dtype=torch.float64, device=dev)
    torch.distributed.all_reduce(t)
    return float(t.item()) / world


def _live(checkpoint_dir: Path, run: dict) -> Live | None:
    """DVCLive writer next to the checkpoints; resumes its step count with the run.

    None, with a warning, where DVCLive is not installed (a bare GPU node's Python): the
    curves are a record, and the training log carries the same figures.
    """
    try:
        from dvclive import Live  # imported late: only training processes need it
    except ImportError:
        log.warning("dvclive is not installed: no training curves in %s; the log has the same "
                    "figures (pip install -r requirements.lock)", checkpoint_dir.parent / LIVE_DIR)
        return None

    live = Live(str(checkpoint_dir.parent / LIVE_DIR), dvcyaml=None, save_dvc_exp=False,
                resume=True)
    live.log_params({k: v for k, v in run.items() if not isinstance(v, dict)})
    return live


def _log_live(live: Live | None, step: int, values: dict[str, float]) -> None:
    if live is None:
        return
    live.step = step
    for name, value in values.items():
        live.log_metric(name, value)
    live.next_step()


@torch.no_grad()
def holdout_auc(model: nn.Module, images: np.ndarray, held: pd.DataFrame, dev: torch.device,
                seed: int, pairs: int = 1000) -> float | None:
    """Cosine verification AUC on seeded pairs of held-out people (half drawn within one
    person, half across the set), or None when the training set holds too few people out."""
    from sklearn.metrics import roc_auc_score

    groups = [rows for rows in held.groupby("identity").indices.values() if len(rows) > 1]
    if len(groups) < 2:
        return None
    rng = np.random.default_rng(seed)
    same = [rng.choice(groups[i], 2, replace=False)
            for i in rng.integers(0, len(groups), pairs // 2)]
    across = [rng.choice(len(held), 2, replace=False) for _ in range(pairs // 2)]
    pair_rows = np.array(same + across)                   # positions within ``held``
    identity = held["identity"].to_numpy()
    truth = identity[pair_rows[:, 0]] == identity[pair_rows[:, 1]]
    wanted, where = np.unique(pair_rows, return_inverse=True)
    shard_rows = held.index.to_numpy()[wanted]
    feats = features.embed(model, images, flip_merge="none", device=dev,
                           rows=shard_rows)[features.OUTPUT]
    feats = torch.nn.functional.normalize(torch.from_numpy(feats), dim=1).numpy()
    where = where.reshape(pair_rows.shape)
    scores = (feats[where[:, 0]] * feats[where[:, 1]]).sum(1)
    return float(roc_auc_score(truth, scores))
