"""One training loop for every method: config in, ``model.pt`` + ``model.json`` out.

The loop is deliberately plain (insightface style): sample a batch, forward, loss, step. All
state that shapes the remaining run (weights, loss parameters, optimizer, schedule, sampler
position, step) is checkpointed atomically, so a killed run restarted on the same config
continues exactly where the last checkpoint left it.
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from facerepro import losses, models
from facerepro.align.shards import IMAGES, INDEX, read_shard
from facerepro.atomic import write_json
from facerepro.config import digest
from facerepro.data.download import sha256_of
from facerepro.training import checkpoint
from facerepro.training.samplers import ShuffleSampler

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config asks for device: cuda but no CUDA device is visible; "
                           "set device: cpu or auto")
    return torch.device(name)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def training_rows(shard_dir: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, their shard positions of split ``train``, and contiguous integer labels."""
    images, index = read_shard(shard_dir)
    train = index[index["split"] == "train"]
    labels, _ = train["identity"].factorize(sort=True)
    return images, train.index.to_numpy(), labels.astype(np.int64)


def _flip_half(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flip = rng.random(len(batch)) < 0.5
    batch = batch.copy()
    batch[flip] = batch[flip, :, ::-1]
    return batch


def train(run_name: str, run: dict, shard_dir: str | Path, model_path: str | Path,
          info_path: str | Path, checkpoint_dir: str | Path, device: str = "auto") -> dict:
    """Train one run; returns what is written to ``model.json``."""
    started = time.time()
    dev = resolve_device(device)
    torch.manual_seed(run["seed"])
    images, positions, labels = training_rows(shard_dir)
    input_size = images.shape[1:3]
    model = models.build(run["net"], input_size, run["embedding_dim"]).to(dev)

    if run["method"] == "pixels_pca":
        fit_rows = np.random.default_rng(run["seed"]).permutation(positions)[:run["pca_images"]]
        model.fit(models.to_input(images[np.sort(fit_rows)]).numpy(), seed=run["seed"])
        steps, final_loss = 0, None
    else:
        # Keys that do not change the trajectory so far: extending a run is a valid resume.
        settings = {k: v for k, v in run.items()
                    if k not in ("iterations", "log_every", "checkpoint_every")}
        fingerprint = digest([settings, sha256_of(Path(shard_dir) / IMAGES),
                              sha256_of(Path(shard_dir) / INDEX)])
        steps, final_loss = _fit(run, model, images, positions, labels, dev, checkpoint_dir,
                                 fingerprint)

    models.save(model.cpu(), run["net"], input_size, model_path)
    info = {"run": run_name, "config_digest": digest(run), "config": run,
            "commit": git_commit(), "steps": steps, "final_loss": final_loss,
            "train_images": len(positions), "classes": int(labels.max()) + 1,
            "device": str(dev), "wall_time_s": round(time.time() - started, 1)}
    write_json(info_path, info)
    return info


def _fit(run: dict, model: torch.nn.Module, images: np.ndarray, positions: np.ndarray,
         labels: np.ndarray, dev: torch.device, checkpoint_dir: str | Path, fingerprint: str
         ) -> tuple[int, float | None]:
    """SGD on the run's loss; returns (steps, mean loss over the last logging window).

    A checkpoint is resumed only when its ``fingerprint`` (run settings and training data)
    matches, so new data or a changed config never continues an old run.
    """
    loss_fn = losses.build(run["method"], run["embedding_dim"], int(labels.max()) + 1).to(dev)
    params = list(model.parameters()) + list(loss_fn.parameters())
    optimizer = torch.optim.SGD(params, lr=run["lr"], momentum=run["momentum"],
                                weight_decay=run["weight_decay"])
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, run["lr_steps"], gamma=0.1)
    sampler = ShuffleSampler(len(positions), run["batch_size"], run["seed"])
    step = 0
    state = checkpoint.load(checkpoint_dir)
    if state is not None and state["fingerprint"] != fingerprint:
        log.warning("checkpoint in %s was made for other data or settings; starting afresh",
                    checkpoint_dir)
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        sampler.load_state_dict(state["sampler"])
        step = int(state["step"])
        log.info("resumed from %s at step %d", checkpoint_dir, step)

    model.train()
    window: list[float] = []
    final_loss: float | None = None
    bar = tqdm(range(step, run["iterations"]), initial=step, total=run["iterations"],
               mininterval=10, desc="train")
    for step in bar:
        rows = np.sort(sampler.next_batch())
        batch = images[positions[rows]]
        if run["flip"]:
            batch = _flip_half(batch, np.random.default_rng([run["seed"], step]))
        x = models.to_input(batch, dev)
        y = torch.from_numpy(labels[rows]).to(dev)
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {step + 1}: training diverged. Lower `lr` of "
                f"this run in the config; the last good checkpoint is in {checkpoint_dir}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        window.append(loss.item())
        if (step + 1) % run["log_every"] == 0 or step + 1 == run["iterations"]:
            final_loss = float(np.mean(window))
            window.clear()
            log.info("step %d loss %.4f lr %.4g", step + 1, final_loss,
                     schedule.get_last_lr()[0])
            bar.set_postfix(loss=f"{final_loss:.3f}")
        if (step + 1) % run["checkpoint_every"] == 0 or step + 1 == run["iterations"]:
            checkpoint.save(checkpoint_dir, {
                "model": model.state_dict(), "loss": loss_fn.state_dict(),
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "sampler": sampler.state_dict(), "step": step + 1,
                "fingerprint": fingerprint})
    model.eval()
    return run["iterations"], final_loss
