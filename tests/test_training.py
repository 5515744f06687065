import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from facerepro import models
from facerepro.align.shards import read_shard, write_shard
from facerepro.config import default_run
from facerepro.training import checkpoint, samplers
from facerepro.training.launch import torchrun
from facerepro.training.loader import BatchLoader, flip_mask
from facerepro.training.samplers import ShuffleSampler
from facerepro.training.trainer import (
    _check_share,
    build_optimizer,
    holdout_auc,
    train,
    training_rows,
)

RUN = default_run(method="softmax", net="sphere4", train="synth/casia", embedding_dim=16,
                  iterations=8, batch_size=8, lr=0.05, lr_steps=[5], seed=3, log_every=2,
                  checkpoint_every=3, pca_images=20)


@pytest.fixture()
def shard(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    index = pd.DataFrame({"image_id": [f"i{k}" for k in range(n)],
                          "identity": [f"p{k % 5}" for k in range(n)],
                          "split": ["train"] * (n - 4) + ["test"] * 4})
    images = rng.integers(0, 255, (n, 24, 20, 3), np.uint8)
    write_shard(tmp_path / "shard", iter(images), index, 24, 20)
    return tmp_path / "shard"


def test_sampler_resumes_the_same_sequence():
    a = ShuffleSampler(10, 3, seed=1)
    first = [a.next_batch() for _ in range(5)]
    b = ShuffleSampler(10, 3, seed=1)
    [b.next_batch() for _ in range(2)]
    c = ShuffleSampler(10, 3, seed=1)
    c.load_state_dict(b.state_dict())
    for expected in first[2:]:
        np.testing.assert_array_equal(c.next_batch(), expected)
    # an epoch covers 3 full batches of distinct items, the remainder is dropped
    assert len(np.unique(np.concatenate(first[:3]))) == 9


def _weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_weights(path_a, path_b):
    assert_same_weights_of(_weights(path_a), _weights(path_b))


def assert_same_weights_of(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


# Losses with state beyond their parameters (A-Softmax's annealing step, the centres of center
# loss, the random negatives of the VGG rule) and the FaceNet net resume exactly too.
METHODS = {
    "softmax": RUN,
    "a_softmax": {**RUN, "method": "a_softmax",
                  "loss_options": {"m": 4, "anneal": True, "lambda_base": 1000,
                                   "lambda_gamma": 0.12, "lambda_power": 1, "lambda_min": 5}},
    "softmax_center": {**RUN, "method": "softmax_center",
                       "loss_options": {"center_weight": 0.1, "center_alpha": 0.5,
                                        "bias": True}},
    "softmax_contrastive": default_run(
        method="softmax_contrastive", net="sphere4", train="synth/casia", embedding_dim=16,
        iterations=8, batch_size=8, lr=0.05, lr_steps=[5], seed=3, log_every=2,
        checkpoint_every=3),
    "l_softmax": {**RUN, "method": "l_softmax",
                  "loss_options": {"m": 2, "anneal": True, "lambda_base": 1000,
                                   "lambda_gamma": 0.12, "lambda_power": 1, "lambda_min": 5}},
    "triplet_vgg": default_run(method="triplet", net="facenet_nn2", train="synth/casia",
                               net_options={"width": 0.125}, embedding_dim=16, iterations=8,
                               batch_size=8, lr=0.01, seed=3, log_every=2, checkpoint_every=3,
                               sampler_options={"images_per_identity": 4},
                               loss_options={"negatives": "vgg"}),
    # the loss cache and two re-clusterings (steps 3 and 6) are part of the state
    "clmle": default_run(method="clmle", net="sphere4", train="synth/casia", embedding_dim=16,
                         iterations=8, batch_size=8, lr=0.05, seed=3, log_every=2,
                         checkpoint_every=3, clustering={"size": 3, "every": 3},
                         sampler_options={"clusters_per_batch": 4, "samples_per_cluster": 2}),
}


@pytest.mark.parametrize("method", METHODS)
def test_killed_run_resumes_exactly(shard, tmp_path, caplog, method):
    torch.set_num_threads(1)
    run = METHODS[method]
    full = tmp_path / "full"
    train("r", run, shard, full / "model.pt", full / "model.json", full / "ckpt", "cpu")

    part = tmp_path / "part"
    # the first process "dies" after step 6 (its last checkpoint) ...
    train("r", {**run, "iterations": 6}, shard, part / "m6.pt", part / "m6.json",
          part / "ckpt", "cpu")
    # ... and the restart continues from there to the end
    with caplog.at_level("INFO"):
        train("r", run, shard, part / "model.pt", part / "model.json", part / "ckpt", "cpu")
    assert "at step 6" in caplog.text
    if method == "a_softmax":
        state = checkpoint.load(part / "ckpt")["objective"]
        assert int(state["loss.iteration"]) == 8       # the annealing step went on from 6

    assert_same_weights(full / "model.pt", part / "model.pt")
    assert_same_weights_of(checkpoint.load(full / "ckpt")["objective"],
                           checkpoint.load(part / "ckpt")["objective"])
    info = json.loads((full / "model.json").read_text())
    assert info["steps"] == 8 and info["train_images"] == 36 and info["classes"] == 5


def test_training_reduces_the_loss(shard, tmp_path):
    torch.set_num_threads(1)
    run = {**RUN, "iterations": 60, "lr_steps": [1000], "log_every": 10, "flip": False}
    info = train("r", run, shard, tmp_path / "m.pt", tmp_path / "m.json", tmp_path / "c", "cpu")
    assert info["final_loss"] < np.log(5) * 0.5   # chance level is log(5)


def test_pixel_pca_model_round_trips(shard, tmp_path):
    run = default_run(method="pixels_pca", net="pixels_pca", train="synth/casia",
                      embedding_dim=6, pca_images=RUN["pca_images"])
    train("pca", run, shard, tmp_path / "m.pt", tmp_path / "m.json", tmp_path / "c", "cpu")
    model = models.load(tmp_path / "m.pt")
    basis = model.basis.numpy()
    np.testing.assert_allclose(basis @ basis.T, np.eye(6), atol=1e-5)   # orthonormal rows
    assert model(torch.zeros(2, 3, 24, 20)).shape == (2, 6)


def test_divergence_stops_with_a_clear_error(shard, tmp_path):
    run = {**RUN, "lr": 1.0e12, "iterations": 20}
    with pytest.raises(FloatingPointError, match="training diverged. Lower `lr`"):
        train("r", run, shard, tmp_path / "m.pt", tmp_path / "m.json", tmp_path / "c", "cpu")
    assert not (tmp_path / "m.pt").exists()


def test_checkpoint_of_other_data_is_not_resumed(shard, tmp_path):
    torch.set_num_threads(1)
    ckpt = tmp_path / "ckpt"
    train("r", {**RUN, "iterations": 6}, shard, tmp_path / "a.pt", tmp_path / "a.json", ckpt,
          "cpu")
    # the run's settings change: a fresh run must not pick up the old run's step 6
    changed = {**RUN, "lr": 0.01}
    train("r", changed, shard, tmp_path / "b.pt", tmp_path / "b.json", ckpt, "cpu")
    train("r", changed, shard, tmp_path / "c.pt", tmp_path / "c.json", tmp_path / "new", "cpu")
    assert_same_weights(tmp_path / "b.pt", tmp_path / "c.pt")


def test_init_from_starts_training_from_the_source_weights(shard, tmp_path, monkeypatch):
    from facerepro.training.trainer import Objective

    torch.set_num_threads(1)
    train("src", RUN, shard, tmp_path / "src.pt", tmp_path / "src.json", tmp_path / "cs", "cpu")
    first_forward: list[dict] = []
    forward = Objective.forward

    def spy(self, x, y):
        if not first_forward:
            first_forward.append({k: v.clone() for k, v in self.model.state_dict().items()})
        return forward(self, x, y)

    monkeypatch.setattr(Objective, "forward", spy)
    run = {**RUN, "iterations": 2, "seed": 7}
    train("r", run, shard, tmp_path / "r.pt", tmp_path / "r.json", tmp_path / "cr", "cpu",
          init_path=tmp_path / "src.pt")
    source = _weights(tmp_path / "src.pt")
    assert_same_weights_of(first_forward[0], source)
    # without the copy, the first forward would see the run's own initialisation instead
    torch.manual_seed(run["seed"])
    own = models.build(run["net"], (24, 20), run["embedding_dim"]).state_dict()
    assert any(not torch.equal(own[k], source[k]) for k in source)
    # and the two steps then trained on from there
    assert any(not torch.equal(v, source[k]) for k, v in _weights(tmp_path / "r.pt").items())


def _train_in_subprocess(run, shard, out):
    code = ("import json, sys, torch\n"
            "torch.set_num_threads(1)\n"
            "from facerepro.training.trainer import train\n"
            "a = json.loads(sys.argv[1])\n"
            "train('r', a['run'], a['shard'], a['model'], a['info'], a['ckpt'], 'cpu')\n")
    args = json.dumps({"run": run, "shard": str(shard), "model": str(out / "model.pt"),
                       "info": str(out / "model.json"), "ckpt": str(out / "ckpt")})
    return subprocess.Popen([sys.executable, "-c", code, args])


def test_sigkilled_run_resumes_bit_identically(shard, tmp_path):
    torch.set_num_threads(1)
    run = {**RUN, "iterations": 200, "checkpoint_every": 10, "log_every": 50, "lr": 0.01,
           "lr_steps": [150]}
    straight = tmp_path / "straight"
    train("r", run, shard, straight / "model.pt", straight / "model.json", straight / "ckpt",
          "cpu")

    killed = tmp_path / "killed"
    proc = _train_in_subprocess(run, shard, killed)
    latest = killed / "ckpt" / checkpoint.LATEST
    deadline = time.time() + 120
    while not latest.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    step = checkpoint.load(killed / "ckpt")["step"]
    assert 0 < step < run["iterations"] and not (killed / "model.pt").exists()

    info = train("r", run, shard, killed / "model.pt", killed / "model.json", killed / "ckpt",
                 "cpu")
    assert info["steps"] == run["iterations"]
    assert_same_weights(straight / "model.pt", killed / "model.pt")


def test_ddp_on_two_cpu_workers_matches_one_process(shard, tmp_path):
    # no batch norm in the net and a mean loss: averaging the two halves' gradients is the
    # full batch's gradient, so two workers must follow one process up to rounding.
    torch.set_num_threads(1)
    run = {**RUN, "iterations": 6, "checkpoint_every": 6}
    one = tmp_path / "one"
    train("r", run, shard, one / "model.pt", one / "model.json", one / "ckpt", "cpu")
    two = tmp_path / "two"
    torchrun(2, {"run_name": "r", "run": run, "shard_dir": shard, "model_path": two / "model.pt",
                 "info_path": two / "model.json", "checkpoint_dir": two / "ckpt",
                 "device": "cpu"})
    info = json.loads((two / "model.json").read_text())
    assert info["world_size"] == 2 and info["steps"] == 6
    a, b = _weights(one / "model.pt"), _weights(two / "model.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def test_loader_keeps_the_sampler_order_and_state(shard):
    images, index = read_shard(shard)
    positions, labels = training_rows(RUN, index)
    reference = samplers.build("pair", labels, 8, seed=5)
    expected = [reference.next_batch() for _ in range(4)]
    sampler = samplers.build("pair", labels, 8, seed=5)
    batches = list(BatchLoader(images, positions, labels, sampler, 0, 4, flip=True, seed=5))
    for step, (batch, rows) in enumerate(zip(batches, expected, strict=True)):
        mirrored = flip_mask(8, 5, step)
        want = images[positions[rows]].copy()
        want[mirrored] = want[mirrored, :, ::-1]
        torch.testing.assert_close(batch.x, models.to_input(want))
        np.testing.assert_array_equal(batch.y.numpy(), labels[rows])
    # rank 1 of 2 gets the second half of the same global batch, same flips
    sampler = samplers.build("pair", labels, 8, seed=5)
    half = next(iter(BatchLoader(images, positions, labels, sampler, 0, 1, True, 5, 1, 2)))
    torch.testing.assert_close(half.x, batches[0].x[4:])
    # the state carried by batch 1 restarts the sampler at batch 2
    resumed = samplers.build("pair", labels, 8, seed=5)
    resumed.load_state_dict(batches[1].sampler_state)
    np.testing.assert_array_equal(resumed.next_batch(), expected[2])


def test_loader_reports_a_sampler_error():
    class Broken:
        def next_batch(self):
            raise RuntimeError("sampler broke")

        def state_dict(self):
            return {}

    loader = BatchLoader(np.zeros((4, 2, 2, 3), np.uint8), np.arange(4), np.zeros(4, int),
                         Broken(), 0, 3, flip=False, seed=0)
    with pytest.raises(RuntimeError, match="sampler broke"):
        list(loader)


def test_adagrad_learns_and_dvclive_logs_every_window(shard, tmp_path):
    torch.set_num_threads(1)
    run = {**RUN, "optimizer": "adagrad", "lr": 0.003, "iterations": 40, "log_every": 10,
           "checkpoint_every": 20, "flip": False}
    info = train("r", run, shard, tmp_path / "m.pt", tmp_path / "m.json", tmp_path / "ckpt",
                 "cpu")
    rows = pd.read_csv(tmp_path / "dvclive/plots/metrics/train/loss.tsv", sep="\t")
    assert rows["step"].tolist() == [10, 20, 30, 40]
    assert rows["loss"].iloc[-1] < 0.5 * rows["loss"].iloc[0]
    assert rows["loss"].iloc[-1] == pytest.approx(info["final_loss"])
    # extending the run resumes DVCLive's series where it stopped
    train("r", {**run, "iterations": 50}, shard, tmp_path / "m.pt", tmp_path / "m.json",
          tmp_path / "ckpt", "cpu")
    rows = pd.read_csv(tmp_path / "dvclive/plots/metrics/train/loss.tsv", sep="\t")
    assert rows["step"].tolist() == [10, 20, 30, 40, 50]


def test_holdout_auc_is_one_when_each_person_has_one_image_content(tmp_path):
    rng = np.random.default_rng(0)
    people = rng.integers(0, 255, (6, 8, 6, 3), np.uint8)
    person = np.repeat(np.arange(6), 3)
    images = people[person]
    held = pd.DataFrame({"identity": [f"p{k}" for k in person]}, index=np.arange(18))
    model = torch.nn.Flatten()
    auc = holdout_auc(model, images, held, torch.device("cpu"), seed=1, pairs=200)
    assert auc == 1.0
    shuffled = held.assign(identity=rng.permutation(held["identity"].to_numpy()))
    assert holdout_auc(model, images, shuffled, torch.device("cpu"), seed=1, pairs=200) < 0.9
    assert holdout_auc(model, images, held.iloc[:3], torch.device("cpu"), 1) is None


def test_plateau_run_resumes_bit_identically(shard, tmp_path):
    # a checkpoint mid-window: the window's losses travel in the checkpoint
    torch.set_num_threads(1)
    run = {**RUN, "schedule": "plateau", "plateau_patience": 0, "iterations": 12,
           "log_every": 4, "checkpoint_every": 6}
    straight = train("r", run, shard, tmp_path / "a.pt", tmp_path / "a.json", tmp_path / "a",
                     "cpu")
    train("r", {**run, "iterations": 6}, shard, tmp_path / "m.pt", tmp_path / "m.json",
          tmp_path / "b", "cpu")
    resumed = train("r", run, shard, tmp_path / "b.pt", tmp_path / "b.json", tmp_path / "b",
                    "cpu")
    assert resumed["final_loss"] == straight["final_loss"]
    assert_same_weights(tmp_path / "a.pt", tmp_path / "b.pt")
    # plateau windows are part of the trajectory: another log_every starts afresh
    assert checkpoint.load(tmp_path / "b")["step"] == 12
    with pytest.raises(ValueError, match="past this run's iterations"):
        train("r", {**run, "iterations": 8}, shard, tmp_path / "c.pt", tmp_path / "c.json",
              tmp_path / "b", "cpu")


@pytest.mark.parametrize("sampler, options, world, ok", [
    ("pair", {}, 4, True), ("pair", {}, 8, False),
    ("identity", {"images_per_identity": 4}, 2, True),
    ("identity", {"images_per_identity": 4}, 4, False), ("shuffle", {}, 3, False)])
def test_ddp_slices_keep_pairs_and_groups_whole(sampler, options, world, ok):
    run = {**RUN, "sampler": sampler, "sampler_options": options}      # batch_size 8
    if ok:
        _check_share(run, world)
    else:
        with pytest.raises(ValueError, match="whole multiple"):
            _check_share(run, world)


class _RefreshedSampler(ShuffleSampler):
    """A shuffle sampler that follows the training: it records each refresh and hands out its
    own targets, which it changes at step 2."""

    def __init__(self, labels, batch_size, seed):
        super().__init__(len(labels), batch_size, seed)
        self.targets = np.asarray(labels).copy()
        self.calls, self.feature_rows = [], []

    def refresh(self, features, step, loss):
        self.calls.append((step, self.position))
        if step == 0:
            self.feature_rows.append(len(features()))
        if step == 2:
            self.targets[:] = 0


def test_trainer_hooks_refresh_a_sampler_in_step_and_use_its_targets(shard, tmp_path,
                                                                    monkeypatch):
    made = []
    monkeypatch.setitem(samplers.SAMPLERS._entries, "refreshed",
                        lambda labels, batch, seed: made.append(
                            _RefreshedSampler(labels, batch, seed)) or made[-1])
    seen = []
    monkeypatch.setattr("facerepro.losses.softmax.SoftmaxLoss.forward",
                        lambda self, f, y: seen.append(y.clone()) or f.sum() * 0 + 1.0)
    run = {**RUN, "sampler": "refreshed", "iterations": 4}
    train("r", run, shard, tmp_path / "m.pt", tmp_path / "m.json", tmp_path / "ckpt", "cpu")
    sampler = made[0]
    # refreshed before the first step and after each: drawn in step (one batch per refresh),
    # never ahead on the loader's thread
    assert sampler.calls == [(s, s * 8) for s in range(5)]
    assert sampler.feature_rows == [36]                 # every training row, embedded
    assert [bool(y.any()) for y in seen] == [True, True, False, False]


def test_a_loss_with_forward_from_reads_the_net_itself():
    from facerepro.training.trainer import Objective

    class Probe(torch.nn.Module):
        def forward_from(self, model, x, y):
            return model.weight.sum() * 0 + x.sum() + y.sum()

    net = torch.nn.Linear(2, 2)
    got = Objective(net, Probe())(torch.ones(3, 2), torch.ones(3))
    assert got.item() == 9.0


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
def test_the_fused_optimizer_steps_as_the_per_tensor_loop(optimizer):
    generator = torch.Generator().manual_seed(0)
    shapes = [(300, 70), (70,), (5, 3, 3, 3)]    # 70 and 135: the kernel's scalar tail too
    fused_params = [torch.nn.Parameter(torch.randn(s, generator=generator)) for s in shapes]
    loop_params = [torch.nn.Parameter(p.detach().clone()) for p in fused_params]
    start = [p.detach().clone() for p in fused_params]
    run = {**RUN, "optimizer": optimizer, "weight_decay": 5e-4}
    fused = build_optimizer(run, fused_params)
    loop = build_optimizer(run, loop_params)
    for group in loop.param_groups:
        group["fused"] = None
    assert fused.defaults["fused"] and RUN["momentum"] > 0
    for _ in range(5):
        for a, b in zip(fused_params, loop_params, strict=True):
            a.grad = torch.randn(a.shape, generator=generator)
            b.grad = a.grad.clone()
        fused.step()
        loop.step()
    for a, b, before in zip(fused_params, loop_params, start, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        assert not torch.allclose(a, before, rtol=1e-3, atol=1e-3)
