"""``precision``: the key's values, bf16 autocast inside the training forward where the CPU has
native bf16, and the logged fp32 fall-back where it has not. Determinism at bf16 is checked in
tests/test_determinism.py (fresh processes)."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from facerepro import config, models
from facerepro.align.shards import write_shard
from facerepro.config import ConfigError, default_run
from facerepro.training import precision
from facerepro.training.trainer import train

RUN = {"method": "softmax", "net": "sphere4", "train": "synth/casia", "embedding_dim": 8,
       "iterations": 2, "batch_size": 8, "lr": 0.01, "log_every": 2, "checkpoint_every": 2}
CPU = torch.device("cpu")


def test_a_bad_precision_is_rejected_naming_the_file_the_key_and_the_choices(tmp_path):
    bad = yaml.safe_load(open("config/test.yaml"))
    bad["runs"]["softmax"]["precision"] = "fp16"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    message = str(caught.value)
    assert str(path) in message
    assert "runs.softmax.precision: 'fp16' is not one of ['auto', 'fp32', 'bf16']" in message


def test_the_old_amp_key_is_gone():
    # one key per meaning: `amp` became `precision`
    with pytest.raises(ConfigError, match="'amp' was unexpected"):
        default_run(**RUN, amp=True)
    assert default_run(**RUN)["precision"] == "auto"


@pytest.mark.parametrize("native", [True, False])
def test_resolve_on_the_cpu(monkeypatch, caplog, native):
    monkeypatch.setattr(precision, "cpu_bf16", lambda: native)
    with caplog.at_level(logging.WARNING, logger="facerepro.training.precision"):
        # auto is fp32 on the CPU even where bf16 is native: make run keeps its numbers
        assert precision.resolve("auto", CPU, "r1") == "fp32"
        assert precision.resolve("fp32", CPU, "r2") == "fp32"
        assert not caplog.records
        assert precision.resolve("bf16", CPU, "my_run") == ("bf16" if native else "fp32")
    warnings = [r.getMessage() for r in caplog.records]
    if native:
        assert warnings == []
    else:
        assert len(warnings) == 1 and "my_run" in warnings[0] and "fp32" in warnings[0]


def test_the_probe_needs_native_bf16_instructions(monkeypatch):
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False)
    assert precision.cpu_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    # autocast itself casts on every CPU, so with an instruction set the probe answers True
    assert precision.cpu_bf16() is True


@pytest.fixture()
def shard(tmp_path):
    rng = np.random.default_rng(0)
    index = pd.DataFrame({"image_id": [f"i{k}" for k in range(24)],
                          "identity": [f"p{k % 4}" for k in range(24)], "split": "train"})
    write_shard(tmp_path / "shard", iter(rng.integers(0, 255, (24, 24, 20, 3), np.uint8)),
                index, 24, 20)
    return tmp_path / "shard"


@pytest.mark.parametrize(("asked", "native", "used"), [
    ("bf16", True, torch.bfloat16), ("fp32", True, torch.float32),
    ("auto", True, torch.float32), ("bf16", False, torch.float32)])
def test_the_training_forward_runs_in_the_precision_used(shard, tmp_path, monkeypatch, caplog,
                                                         asked, native, used):
    """The dtype of the net's output inside the trainer's forward, observed by a hook."""
    monkeypatch.setattr(precision, "cpu_bf16", lambda: native)
    seen = []
    build = models.build

    def observed(*args, **kwargs):
        net = build(*args, **kwargs)
        net.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        return net

    monkeypatch.setattr(models, "build", observed)
    with caplog.at_level(logging.WARNING, logger="facerepro.training.precision"):
        train("probe_run", default_run(**RUN, precision=asked), shard, tmp_path / "m.pt",
              tmp_path / "m.json", tmp_path / "ckpt", "cpu")
    assert seen == [used] * RUN["iterations"]
    recorded = json.loads((tmp_path / "m.json").read_text())["precision"]
    assert recorded == ("bf16" if used == torch.bfloat16 else "fp32")
    fell_back = [r.getMessage() for r in caplog.records if "probe_run" in r.getMessage()]
    assert len(fell_back) == (asked == "bf16" and not native)
    # the weights stay fp32 whatever the arithmetic
    saved = torch.load(tmp_path / "m.pt", weights_only=True)["state_dict"]
    assert {t.dtype for t in saved.values() if t.is_floating_point()} == {torch.float32}


def test_the_loss_computes_in_fp32_under_bf16_autocast():
    """CLMLE's margins (here 1e-4) lie below bf16's resolution of a cosine: in bf16 the loss
    would not see them. Under autocast the trainer's objective must give the fp32 value."""
    from facerepro.losses.clmle import CLMLELoss
    from facerepro.training.trainer import Objective

    torch.manual_seed(0)
    embeddings = torch.randn(24, 16)
    labels = torch.arange(24) % 4
    target = torch.stack([labels, labels * 2 + torch.arange(24) % 2], dim=1)
    loss = CLMLELoss(num_classes=4, class_sizes=[6, 6, 6, 6], a1=1e-3, a2=1e-3)
    assert 0 < float(loss.margin_between) < 2e-3
    objective = Objective(torch.nn.Identity(), loss)
    exact = objective(embeddings, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = objective(embeddings, target)
        bare = loss(embeddings, target)       # the loss on its own, as before: in bf16
    assert cast.dtype == torch.float32 and torch.equal(cast, exact)
    assert not torch.allclose(bare, exact, rtol=1e-4, atol=0)   # the check could fail
