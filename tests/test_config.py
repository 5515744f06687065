import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from facerepro import losses
from facerepro.config import FITTED_METHODS, ConfigError, evaluations, load, validate
from facerepro.views import protocol_views

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["config/config.yaml", "config/test.yaml"]


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_validate_and_get_defaults(name):
    config = load(ROOT / name)
    for run in config["runs"].values():
        assert {"iterations", "seed", "template", "checkpoint_every"} <= run.keys()
    assert config["align"]["landmarks"] == "dataset"


def _raw():
    return yaml.safe_load((ROOT / "config/test.yaml").read_text())


def test_unknown_key_is_named():
    config = _raw()
    config["runs"]["softmax"]["iteratoins"] = 5
    with pytest.raises(ConfigError, match=r"runs\.softmax: .*'iteratoins' was unexpected"):
        validate(config, source="x.yaml")


def test_wrong_type_is_named():
    config = _raw()
    config["runs"]["softmax"]["batch_size"] = "big"
    with pytest.raises(ConfigError, match=r"runs\.softmax\.batch_size: 'big' is not of type"):
        validate(config)


def test_unknown_top_level_key_and_bad_enum():
    config = _raw()
    config["devcie"] = "cpu"
    with pytest.raises(ConfigError, match="'devcie' was unexpected"):
        validate(copy.deepcopy(config))
    config = _raw()
    config["device"] = "tpu"
    with pytest.raises(ConfigError, match=r"device: 'tpu' is not one of"):
        validate(config)


def test_run_must_train_on_a_configured_dataset():
    config = _raw()
    config["runs"]["softmax"]["train"] = "synth/webface"
    with pytest.raises(ConfigError, match=r"runs\.softmax\.train = 'synth/webface'"):
        validate(config)


def test_identity_sampler_needs_images_per_identity():
    config = _raw()
    config["runs"]["softmax"]["sampler"] = "identity"
    with pytest.raises(ConfigError, match="runs.softmax: 'sampler_options' is a required"):
        validate(config)
    config["runs"]["softmax"]["sampler_options"] = {"images_per_identity": 4}
    validate(config)


def test_joint_bayesian_needs_a_held_out_training_set():
    config = _raw()
    del config["holdout"]
    with pytest.raises(ConfigError, match="joint_bayesian.train to a dataset listed under "
                                          "holdout"):
        validate(config)
    config = _raw()
    config["holdout"] = {"synth/nowhere": {"identities": 3}}
    with pytest.raises(ConfigError, match="holdout.synth/nowhere is not a dataset"):
        validate(config)


def _snakemake(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _dry_run_jobs(config_file: str, workdir) -> dict[str, int]:
    """Jobs per rule that `snakemake -n` plans for a config in an empty directory."""
    out = _snakemake("-n", "--cores", "2", "--configfile", str(ROOT / config_file),
                     "--workflow-profile", "none", "--directory", str(workdir),
                     "-s", str(ROOT / "Snakefile"))
    assert out.returncode == 0, out.stderr + out.stdout
    stats = out.stdout.split("Job stats:")[1].split("total")[0]
    return {line.split()[0]: int(line.split()[1]) for line in stats.splitlines()[3:]
            if line.strip()}


def test_paper_config_dry_run_plans_every_run_with_no_data_present(tmp_path):
    counts = _dry_run_jobs("config/paper.yaml", tmp_path)
    config = load(ROOT / "config/paper.yaml")
    assert counts["train"] == len(config["runs"])
    assert counts["evaluate"] == len(evaluations(config))
    assert {spec["kind"] for spec in config["datasets"].values()} >= {"lfw", "casia_webface"}
    assert not (tmp_path / "resources").exists()      # a dry run fetches nothing


def test_default_config_dry_run_plans_the_whole_dag(tmp_path):
    counts = _dry_run_jobs("config/config.yaml", tmp_path)
    config = load(ROOT / "config/config.yaml")
    runs = config["runs"]
    evaluated = [(run, config["protocols"][p]) for run, p in evaluations(config)]
    jb_sets = {(run, p["joint_bayesian"]["train"]) for run, p in evaluated
               if any(s.startswith("joint_bayesian") for s in p["scorers"])}
    assert jb_sets, "the default config scores with Joint Bayesian"
    assert counts["train"] == len(runs)
    assert counts["evaluate"] == len(evaluated)
    # one features file per run and distinct test view (crop, degradation, occlusion level),
    # plus each JB set's held-out people, each look-up table's training faces and each
    # MegaFace protocol's distractors
    views = {(run, p["dataset"], view.name) for run, p in evaluated for view in protocol_views(p)}
    tables = {(run, p["train"]) for run, p in evaluated if p["kind"] == "lut_attribute"}
    distractors = {(run, p["distractors"]) for run, p in evaluated if p["kind"] == "megaface"}
    assert distractors, "the default config runs MegaFace"
    assert counts["features"] == len(views) + len(jb_sets) + len(tables) + len(distractors)
    crops = {(run["train"], run["template"]) for run in runs.values()} | {
        (p[key], p.get("template") or runs[run]["template"]) for run, p in evaluated
        for key in ("dataset", "distractors") if key in p} | {
        (p["train"], runs[run]["template"]) for run, p in evaluated if "train" in p}
    assert counts["align"] == len(crops)
    datasets = {d for d, _ in crops}
    assert counts["clean"] == counts["extract"] == len(datasets)
    assert counts["synth_mirror"] == counts["report"] == 1


def test_bad_config_fails_before_any_job(tmp_path):
    config = _raw()
    config["runs"]["softmax"]["lr"] = "fast"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    out = _snakemake("-n", "--cores", "1", "--configfile", str(bad), "--workflow-profile",
                     "none", "--directory", str(tmp_path), "-s", str(ROOT / "Snakefile"))
    assert out.returncode != 0
    assert "runs.softmax.lr: 'fast' is not of type 'number'" in out.stderr + out.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


@pytest.mark.parametrize("device, gpus", [("cuda", 1), ("cpu", 0)])
def test_gpu_jobs_count_their_gpus_only_on_cuda(tmp_path, device, gpus):
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    config["device"] = device
    config["runs"]["softmax"]["gpus"] = 2       # a DDP run counts all its GPUs
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    out = _snakemake("-n", "--cores", "2", "--configfile", str(path), "--workflow-profile",
                     "none", "--directory", str(tmp_path), "-s", str(ROOT / "Snakefile"))
    assert out.returncode == 0, out.stderr
    train_jobs = [job for job in out.stdout.split("rule ")[1:] if job.startswith("train:")]
    assert len(train_jobs) == len(config["runs"])
    for job in train_jobs:
        run = job.split("wildcards: run=")[1].split("\n")[0]
        wanted = gpus * (2 if run == "softmax" else 1)
        if config["runs"][run]["method"] in FITTED_METHODS:     # a PCA fit holds no GPU
            wanted = 0
        assert f"gpu={wanted}" in job, job
    feature_jobs = [job for job in out.stdout.split("rule ")[1:] if job.startswith("features:")]
    assert feature_jobs and all(f"gpu={gpus}" in job for job in feature_jobs)


def test_each_method_gets_its_papers_defaults():
    from facerepro.config import default_run

    facenet = default_run(method="triplet", net="facenet_nn2", train="synth/casia")
    assert (facenet["optimizer"], facenet["lr"], facenet["embedding_dim"]) == ("adagrad", 0.05, 128)
    assert facenet["sampler"] == "identity"
    assert facenet["sampler_options"] == {"images_per_identity": 40}
    assert facenet["loss_options"] == {"margin": 0.2, "negatives": "semihard"}
    assert facenet["net_options"] == {"width": 1.0, "drop_5x5_late": False}
    sphere = default_run(method="a_softmax", net="sphere4", train="synth/casia")
    assert (sphere["optimizer"], sphere["lr"], sphere["sampler"]) == ("sgd", 0.1, "shuffle")
    assert sphere["loss_options"]["m"] == 4 and sphere["loss_options"]["lambda_min"] == 5
    assert sphere["net_options"] == {"last_relu": False}


@pytest.mark.parametrize(("method", "options"), [
    ("a_softmax", {"m": 5}), ("softmax", {"m": 4}), ("triplet", {"negatives": "easy"}),
    ("clmle", {"a1": 1.5}), ("softmax_center", {"center_alpha": 0}),
    ("pixels_pca", {"bias": True})])
def test_loss_options_are_checked_per_method(method, options):
    config = _raw()
    config["runs"]["softmax"].update(method=method, loss_options=options)
    with pytest.raises(ConfigError, match="runs.softmax.loss_options"):
        validate(config)


# A net each loss method can train.
NETS = {"ident_verif": "deepid2plus", "pair_logistic": "compact",
        "attribute_softmax": "deepid2_attributes", "triplet": "facenet_nn2"}


def _loss_settings(module: torch.nn.Module) -> list[dict]:
    """Every scalar setting and buffer of a loss and its parts (its hyper-parameters)."""
    return [{"attributes": {k: v for k, v in vars(part).items()
                            if isinstance(v, bool | int | float | str | tuple)},
             "buffers": {k: b.tolist() for k, b in part.named_buffers(recurse=False)}}
            for part in module.modules()]


@pytest.mark.parametrize("method", sorted(losses.OPTIONS))
def test_loss_option_defaults_are_those_of_the_options_dataclass_and_the_loss(method):
    from facerepro.config import default_run

    run = default_run(method=method, net=NETS.get(method, "sphere4"), train="synth/casia")
    assert run["loss_options"] == dataclasses.asdict(losses.OPTIONS[method]())
    # the loss's constructor defaults are the same values
    labels = np.array([[0, 1], [1, 1], [1, 0]]) if run["labels"] == "attributes" \
        else np.array([0, 1, 2, 1])
    settings = [_loss_settings(losses.build(method, 8, labels, options, supervised_layers=2))
                for options in ({}, run["loss_options"])]
    assert settings[0] == settings[1]


def test_every_loss_method_has_options():
    assert set(losses.OPTIONS) == set(losses.LOSSES)


@pytest.mark.parametrize("method", sorted(losses.OPTIONS))
def test_an_unknown_loss_option_is_named(method):
    config = _raw()
    config["runs"]["softmax"] = {"method": method, "net": NETS.get(method, "sphere4"),
                                 "train": "synth/casia", "loss_options": {"margn": 0.3}}
    with pytest.raises(ConfigError, match=r"runs\.softmax\.loss_options: .*'margn' was "
                                          r"unexpected"):
        validate(config)


@pytest.mark.parametrize(("run", "where"), [
    ({"method": "ident_verif", "net": "sphere4"}, r"runs\.deepid\.net: 'sphere4' is not one of"),
    ({"method": "pair_logistic", "net": "sphere4"}, r"runs\.deepid\.net: 'compact' was expected"),
    ({"method": "pair_logistic", "net": "compact", "net_options": {"bits": 4},
      "loss_options": {"technique": "expected"}}, r"runs\.deepid\.net_options\.bits: 1 was"),
    ({"method": "lbp", "net": "pixels_pca"}, r"runs\.deepid\.net: 'lbp' was expected")])
def test_a_method_needs_a_net_it_can_train(run, where):
    config = _raw()
    config["runs"]["deepid"] = {**run, "train": "synth/casia"}
    with pytest.raises(ConfigError, match=where):
        validate(config)
    config = _raw()    # the expected loss on binary codes is fine
    config["runs"]["codes"] = {"method": "pair_logistic", "net": "compact", "train": "synth/casia",
                               "loss_options": {"technique": "expected"}}
    assert validate(config)["runs"]["codes"]["net_options"]["bits"] == 1


def test_runs_sharing_a_yaml_anchor_get_their_own_defaults():
    text = (ROOT / "config/test.yaml").read_text().replace("  facenet:\n", "  facenet: &fn\n")
    text = text.replace("\nprotocols:", "  facenet_nn1:\n    <<: *fn\n    net: facenet_nn1\n"
                        "\nprotocols:")
    config = yaml.safe_load(text)
    assert config["runs"]["facenet"]["net_options"] is config["runs"]["facenet_nn1"]["net_options"]
    validate(config)
    assert config["runs"]["facenet"]["net_options"] == {"width": 0.25, "drop_5x5_late": False}
    assert config["runs"]["facenet_nn1"]["net_options"] == {"width": 0.25}


def test_a_protocol_can_only_name_configured_runs():
    config = _raw()
    config["protocols"]["lfw_center_crop"]["runs"] = ["facenet", "nope"]
    with pytest.raises(ConfigError, match=r"protocols.lfw_center_crop.runs .*\['nope'\]"):
        validate(config)


def test_report_deviations_compare_with_each_methods_paper_values():
    from facerepro.report.html import deviations

    config = load(ROOT / "config/config.yaml")
    lines = "\n".join(deviations(config))
    assert "facenet: " in lines and "lr = 0.002 (paper: 0.05)" in lines
    assert "sampler_options = {'images_per_identity': 8} (paper: {'images_per_identity': 40})" \
        in lines
    assert "optimizer" not in lines          # adagrad is FaceNet's own choice
    # every loss of the default keeps its paper values but DeepID2+'s margin, chosen on the
    # held-out people, and the ablations, each off in the one option its name says
    changed = {line.split(":")[0]: line for line in lines.splitlines() if "loss_options" in line}
    assert set(changed) == {"deepid2plus", "deepid2plus_no_layerwise", "compact_32x1_expected",
                            "compact_32x1_std", "clmle_attributes_no_cost"}
    assert "loss_options.margin_scale = feature_norm (paper: absolute)" in changed["deepid2plus"]
    assert "loss_options.cost_sensitive = False (paper: True)" \
        in changed["clmle_attributes_no_cost"]
    assert "alpha" not in lines              # no paper value to deviate from
    # CLMLE's paper lr is 0.1 for faces, 0.001 for the attribute nets
    [clmle, attributes] = [line for line in lines.splitlines()
                           if line.startswith(("clmle:", "clmle_attributes:"))]
    assert "lr = 5e-05 (paper: 0.1)" in clmle and "lr = 0.05 (paper: 0.001)" in attributes
    # an ablation that switches a paper setting off (DeepID2+ Fig. 3, config/extended.yaml)
    config["runs"]["deepid2plus"]["loss_options"]["layerwise"] = False
    [line] = [line for line in deviations(config) if line.startswith("deepid2plus:")]
    assert "loss_options.layerwise = False (paper: True)" in line


def _lines_of(config: dict, text: str) -> list[str]:
    from facerepro.report.html import deviations

    return [line for line in deviations(config) if text in line]


@pytest.mark.parametrize(("option", "value", "paper"), [
    ("centroids", "unit", "mean"), ("normalise_weights", True, False)])
def test_clmle_choices_are_deviations_only_off_the_papers_value(option, value, paper):
    config = load(ROOT / "config/config.yaml")
    assert config["runs"]["clmle"]["loss_options"][option] == paper   # the paper's default
    assert not _lines_of(config, option)
    config["runs"]["clmle"]["loss_options"][option] = value
    [line] = _lines_of(config, option)
    assert line.startswith("clmle:") and f"loss_options.{option} = {value} (paper: {paper})" \
        in line


def test_bf16_training_is_a_listed_difference():
    config = load(ROOT / "config/config.yaml")   # bf16 on sphere4, DeepID2+, attribute nets
    bf16 = ["softmax", "sphereface_m4", "deepid2plus", "deepid2plus_no_layerwise", "clmle",
            "clmle_attributes", "clmle_attributes_uniform", "clmle_attributes_no_cost",
            "attributes_cost_sensitive", "softmax_powerlaw", "clmle_powerlaw"]
    [line] = _lines_of(config, "bf16 autocast")
    assert line.startswith(", ".join(bf16) + ": trained in bf16") and "(the papers: fp32)" in line
    for run in bf16:
        config["runs"][run]["precision"] = "auto"   # auto on device auto: fp32 here
    assert not _lines_of(config, "bf16")
    config["runs"]["facenet"]["precision"] = "bf16"
    [line] = _lines_of(config, "bf16 autocast")
    assert line.startswith("facenet: trained in bf16")
    paper = load(ROOT / "config/paper.yaml")         # device cuda: auto is bf16
    [line] = _lines_of(paper, "bf16 autocast")
    runs = line.split(": ")[0].split(", ")
    assert {"facenet", "clmle"} <= set(runs) and not any(r.startswith("lbp") for r in runs)


def test_code_deviations_name_the_runs_they_concern():
    from facerepro.report.html import deviations

    config = load(ROOT / "config/paper.yaml")
    [deepid] = _lines_of(config, "conv3 and conv4 are ordinary convolutions")
    assert deepid.startswith("deepid2plus, deepid2plus_no_layerwise,") and "facenet" not in deepid
    # FaceNet's NN2 on SphereFace's 112x96 crop; on a 160x160 crop it is the paper's NN3
    [crop] = _lines_of(config, "crops (FaceNet Tables 1-2")
    assert crop.startswith("facenet: facenet_nn2 on 112x96 crops")
    [constant] = _lines_of(config, "AdaGrad at a constant lr")
    assert constant.startswith("facenet: AdaGrad at a constant lr 0.05")
    [negatives] = _lines_of(config, "randomly sampled negative")
    [repeats] = _lines_of(config, "repeated images")
    assert negatives.startswith("facenet: ") and "fewer than 40 training images" in repeats
    # the 2,000 held-out people: every run on CASIA but DeepID2+'s
    [held] = _lines_of(config, "people held out of casia/casia")
    runs = held.split(": ")[0].split(", ")
    assert "trained without the 2000 people" in held
    assert {"sphere64_softmax", "facenet", "clmle", "compact_32x1"} <= set(runs)
    assert not any(r.startswith("deepid") for r in runs)
    [depth] = _lines_of(config, "retrieval depth")
    assert depth.startswith("celeba_attributes, celeba_attributes_knn: ")
    assert "10,000 validation images" in depth

    config["runs"]["facenet"]["template"] = "facenet_160"
    config["runs"]["facenet"]["lr_steps"] = [80000]
    assert not _lines_of(config, "crops (FaceNet") and not _lines_of(config, "constant lr")
    config["runs"] = {name: spec for name, spec in config["runs"].items()
                      if spec["method"] == "ident_verif"}
    config["protocols"] = {name: p for name, p in config["protocols"].items()
                           if p["kind"] != "attributes" or p["classifier"] == "svm"}
    lines = "\n".join(deviations(config))
    assert "conv3 and conv4" in lines
    for gone in ("FaceNet", "people held out", "retrieval depth"):
        assert gone not in lines
    config["runs"] = {}
    assert not _lines_of(config, "conv3 and conv4")


def test_synthetic_distractor_counts_are_a_listed_difference():
    [line] = _lines_of(load(ROOT / "config/config.yaml"), "distractor photos")
    assert line.startswith("megaface: 3,000 SynthFaces distractor photos of 2,000 people")
    assert "1,000,000" in line
    assert not _lines_of(load(ROOT / "config/paper.yaml"), "distractor photos")   # real files


def test_the_default_configs_validate_with_the_clmle_paper_defaults():
    for name in ("config", "extended", "test", "paper"):
        config = load(ROOT / f"config/{name}.yaml")
        for spec in config["runs"].values():
            if spec["method"] == "clmle":
                assert spec["loss_options"]["centroids"] == "mean"
                assert spec["loss_options"]["normalise_weights"] is False
