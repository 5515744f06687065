"""Every method trains bit-identically in two fresh processes on a multi-threaded CPU, with
the default kernels (``deterministic: false``), and A-Softmax does at ``precision: bf16`` too.

Run as a script (``python test_determinism.py SHARD_DIR OUT_DIR``) this file trains each
run for a few steps on 2 threads and prints one JSON line, ``{run: sha256 of the weights}``;
the test runs that script twice and compares.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facerepro.align.shards import write_shard
from facerepro.config import default_run
from facerepro.training import precision
from facerepro.training.trainer import train

THREADS = 2
COMMON = {"train": "synth/casia", "iterations": 3, "batch_size": 16, "lr": 0.01, "seed": 0,
          "log_every": 3, "checkpoint_every": 3}
RUNS = {
    "softmax": {"net": "sphere4", "embedding_dim": 16},
    "a_softmax": {"net": "sphere4", "embedding_dim": 16},
    "l_softmax": {"net": "sphere4", "embedding_dim": 16},
    "softmax_contrastive": {"net": "sphere4", "embedding_dim": 16},
    "softmax_center": {"net": "sphere4", "embedding_dim": 16},
    "cosface": {"net": "sphere4", "embedding_dim": 16},
    "arcface": {"net": "sphere4", "embedding_dim": 16},
    # The backward of gathering rows for the triplets only runs on several threads past 32,768
    # elements (PyTorch's grain size): triplets x embedding_dim must exceed it here.
    "triplet": {"net": "facenet_nn2", "net_options": {"width": 0.125}, "embedding_dim": 512,
                "batch_size": 32, "sampler_options": {"images_per_identity": 8}},
    "ident_verif": {"net": "deepid2plus", "net_options": {"maps": [4, 4, 4, 4]},
                    "embedding_dim": 8},
    "pair_logistic": {"net": "compact", "net_options": {"bits": 4, "width": 0.125},
                      "embedding_dim": 8},
    "clmle": {"net": "sphere4", "embedding_dim": 16, "batch_size": 8,
              "clustering": {"size": 4, "every": 2},
              "sampler_options": {"clusters_per_batch": 4, "samples_per_cluster": 2}},
    "attribute_softmax": {"net": "deepid2_attributes", "train": "synth/celeba",
                          "net_options": {"maps": [4, 4, 4, 4], "attributes": 3},
                          "embedding_dim": 8},
    # bf16 autocast where the CPU has native bf16 (else the trainer falls back to fp32)
    "a_softmax_bf16": {"method": "a_softmax", "net": "sphere4", "embedding_dim": 16,
                       "precision": "bf16"},
}
IDENTITIES, PER_IDENTITY = 8, 12
ATTRIBUTES = "list_attr_celeba.txt"


def write_training_set(root: Path) -> Path:
    """A shard of 8 people x 12 faces (56x48) and a CelebA-style file of 3 attributes."""
    rng = np.random.default_rng(0)
    n = IDENTITIES * PER_IDENTITY
    index = pd.DataFrame({"image_id": [f"img/{k:06d}" for k in range(n)],
                          "identity": [f"p{k % IDENTITIES}" for k in range(n)],
                          "split": "train"})
    write_shard(root / "shard", iter(rng.integers(0, 255, (n, 56, 48, 3), np.uint8)), index,
                56, 48)
    attributes = rng.random((n, 3)) < 0.4
    lines = [str(n), "A B C"] + [f"{k:06d}.jpg " + " ".join("1" if v else "-1" for v in row)
                                 for k, row in enumerate(attributes)]
    (root / ATTRIBUTES).write_text("\n".join(lines) + "\n")
    return root / "shard"


def weights_digest(path: Path) -> str:
    state = torch.load(path, weights_only=True)["state_dict"]
    sha = hashlib.sha256()
    for name, tensor in state.items():
        sha.update(name.encode())
        sha.update(tensor.numpy().tobytes())
    return sha.hexdigest()


def train_every_method(shard: Path, out: Path) -> dict[str, str]:
    torch.set_num_threads(THREADS)
    digests = {}
    for name, settings in RUNS.items():
        run = default_run(**{"method": name, **COMMON, **settings})
        d = out / name
        train(name, run, shard, d / "model.pt", d / "model.json", d / "ckpt", "cpu",
              shard.parent)
        digests[name] = weights_digest(d / "model.pt")
    return digests


def test_every_method_trains_bit_identically_in_two_processes(tmp_path):
    shard = write_training_set(tmp_path)
    runs = []
    for name in ("first", "second"):
        done = subprocess.run([sys.executable, __file__, str(shard), str(tmp_path / name)],
                              capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.splitlines()[-1]))
    assert list(runs[0]) == list(RUNS)
    differing = [m for m in RUNS if runs[0][m] != runs[1][m]]
    assert not differing, f"weights differ between two processes for {differing}"
    used = json.loads((tmp_path / "first" / "a_softmax_bf16" / "model.json").read_text())
    assert used["precision"] == ("bf16" if precision.cpu_bf16() else "fp32")


if __name__ == "__main__":
    print(json.dumps(train_every_method(Path(sys.argv[1]), Path(sys.argv[2]))))
