import json

import numpy as np
import pandas as pd
import pytest
import torch

from facerepro import models
from facerepro.align.shards import write_shard
from facerepro.training.samplers import ShuffleSampler
from facerepro.training.trainer import train

RUN = {"method": "softmax", "net": "sphere4", "embedding_dim": 16, "iterations": 8,
       "batch_size": 8, "lr": 0.05, "lr_steps": [5], "momentum": 0.9, "weight_decay": 5e-4,
       "flip": True, "seed": 3, "log_every": 2, "checkpoint_every": 3, "pca_images": 20}


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


def test_killed_run_resumes_exactly(shard, tmp_path, caplog):
    torch.set_num_threads(1)
    full = tmp_path / "full"
    train("r", RUN, shard, full / "model.pt", full / "model.json", full / "ckpt", "cpu")

    part = tmp_path / "part"
    # the first process "dies" after step 6 (its last checkpoint) ...
    train("r", {**RUN, "iterations": 6}, shard, part / "m6.pt", part / "m6.json",
          part / "ckpt", "cpu")
    # ... and the restart continues from there to the end
    with caplog.at_level("INFO"):
        train("r", RUN, shard, part / "model.pt", part / "model.json", part / "ckpt", "cpu")
    assert "at step 6" in caplog.text

    a, b = _weights(full / "model.pt"), _weights(part / "model.pt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    info = json.loads((full / "model.json").read_text())
    assert info["steps"] == 8 and info["train_images"] == 36 and info["classes"] == 5


def test_training_reduces_the_loss(shard, tmp_path):
    torch.set_num_threads(1)
    run = {**RUN, "iterations": 60, "lr_steps": [1000], "log_every": 10, "flip": False}
    info = train("r", run, shard, tmp_path / "m.pt", tmp_path / "m.json", tmp_path / "c", "cpu")
    assert info["final_loss"] < np.log(5) * 0.5   # chance level is log(5)


def test_pixel_pca_model_round_trips(shard, tmp_path):
    run = {**RUN, "method": "pixels_pca", "net": "pixels_pca", "embedding_dim": 6}
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
    a, b = _weights(tmp_path / "b.pt"), _weights(tmp_path / "c.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
