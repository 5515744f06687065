"""DVC over the workflow (dvc.yaml), in a git copy of the repository on config/test.yaml.

`dvc repro` runs the whole test workflow once; its data, models and features are pushed to a
temporary remote, dvc.lock committed to git. A fresh clone (no outputs, no DVC cache, no
.snakemake) pulls them back, and after the touch of `make pull` Snakemake has nothing to do.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_repo import dvc, dvc_json, git, run, snakemake

from facerepro import dvc_plots

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def repo(workflow_repo) -> Path:
    return workflow_repo


@pytest.fixture(scope="module")
def remote(workflow_remote) -> Path:
    return workflow_remote


@pytest.fixture(scope="module")
def clone(repo, remote, tmp_path_factory) -> Path:
    """A fresh clone after `make pull`'s steps: pull, check the workspace matches dvc.lock,
    touch the outputs in DAG order."""
    clone = tmp_path_factory.mktemp("dvc_clone") / "repo"
    git(repo.parent, "clone", "-q", str(repo), str(clone))
    for key, value in (("user.name", "FaceRepro test"), ("user.email", "test@facerepro.invalid")):
        git(clone, "config", key, value)            # `dvc exp run` commits experiments
    assert not (clone / "results/models").exists() and not (clone / ".dvc/cache").exists()
    dvc(clone, "remote", "modify", "--local", "local", "url", str(remote))
    dvc(clone, "pull")
    dvc(clone, "status", "--quiet")                 # exits 1 when anything differs
    snakemake(clone, "--touch")
    return clone


@pytest.mark.e2e
def test_repro_runs_one_stage_per_run_and_records_the_outputs(repo):
    runs = yaml.safe_load((repo / "config/config.yaml").read_text())["runs"]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"data", "evaluate", "report"} | {f"train@{name}" for name in runs}
    for name in runs:
        outs = {o["path"] for o in lock[f"train@{name}"]["outs"]}
        assert outs == {f"results/models/{name}"}
        assert lock[f"train@{name}"]["params"]["config/config.yaml"]["runs"][name] == runs[name]
    assert "Data and pipelines are up to date." in dvc(repo, "status")


@pytest.mark.e2e
def test_metrics_show_lists_the_verification_metrics(repo):
    data = dvc_json(repo, "metrics", "show")[""]["data"]
    path = "results/metrics/softmax/lfw_verification.json"
    values = data[path]["data"]["scorers"]["cosine"]["values"]
    written = json.loads((repo / path).read_text())["scorers"]["cosine"]["values"]
    assert values["accuracy_mean"] == written["accuracy_mean"] and "auc" in values
    table = dvc(repo, "metrics", "show", path)
    assert "scorers.cosine.values.accuracy_mean" in table and "scorers.cosine.values.auc" in table


@pytest.mark.e2e
def test_a_fresh_clone_after_pull_runs_nothing(repo, clone):
    for path in ("results/models/softmax/model.pt", "results/aligned/synth/casia/"
                 "sphere_112x96/images.npy", "results/report/index.html",
                 "results/landmarks/synth/lfw.parquet", "results/faces/synth/lfw/summary.json"):
        assert (clone / path).read_bytes() == (repo / path).read_bytes(), path
    assert "Nothing to be done" in snakemake(clone, "-n")
    # the default remote lives in the repository but never in git
    config = (clone / ".dvc/config").read_text()
    assert re.search(r"remote = local", config) and "check_update = false" in config
    assert git(clone, "check-ignore", ".dvc/remote/x").strip() == ".dvc/remote/x"
    # generated results, metrics included, come from DVC and never from git
    assert not git(clone, "ls-files", "results").strip()
    metrics = "results/metrics/softmax/lfw_verification.json"
    assert git(clone, "check-ignore", metrics).strip() == metrics


@pytest.mark.e2e
def test_experiment_with_a_changed_parameter(clone):
    # up to the evaluate stage: test_repro already checks the report stage
    out = dvc(clone, "exp", "run", "evaluate", "-S",
              "config/config.yaml:protocols.lfw_selectiveness.identities=4")
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert ran == {"evaluate"}, out[-3000:]   # the data and the models are kept
    # the experiment keeps its parameter and the metrics it gave (read back from the DVC cache)
    [experiment] = [exp for rev in dvc_json(clone, "exp", "show")
                    for group in rev.get("experiments") or [] for exp in group["revs"]]
    data = experiment["data"]
    assert data["params"]["config/config.yaml"]["data"]["protocols"]["lfw_selectiveness"][
        "identities"] == 4
    scorer = data["metrics"]["results/metrics/deepid2plus/lfw_selectiveness.json"]["data"][
        "scorers"]["single_neuron"]
    assert scorer["n"]["identities"] == 4


@pytest.mark.e2e
def test_plots_render_offline(clone, tmp_path):
    out = run(clone, sys.executable, "-m", "facerepro.dvc_plots", "-o", "results/dvc_plots")
    page = clone / "results/dvc_plots/index.html"
    assert str(page.name) in out
    html = page.read_text()
    body = html.split("<body>", 1)[1]               # the head is the inlined vega libraries
    assert "cdn.jsdelivr" not in html and "vegaEmbed" in body
    # the report's figures as images, copied beside the page
    figures = list((clone / "results/report/figures").rglob("*.png"))
    assert body.count("<img") == len(figures) == len(list(page.parent.glob("static/*.png")))
    plots = body.count("vegaEmbed(")
    curves = len(list(clone.glob("results/models/*/dvclive/plots/metrics/**/*.tsv")))
    assert plots == curves > 0                     # loss, lr, speed, data wait of each run
    if CHROMIUM is None:
        pytest.skip("chromium not installed: the page was not opened in a browser")
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--no-first-run", "--disable-background-networking",
                          "--disable-component-update", f"--user-data-dir={tmp_path}",
                          "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<canvas") == plots          # vega drew every plot, from the page alone


def test_plot_template_carries_vega_inline():
    html = dvc_plots.html_template()
    head = html.split("<body>", 1)[0]
    assert head.count("<script>") == len(dvc_plots.VEGA_ASSETS)
    assert not re.search(r"<script[^>]*\bsrc=", head) and "{scripts}" not in html
    assert html.count("{plot_divs}") == 1 and "vegaEmbed" in head


def test_plot_targets_list_a_defined_directory_file_by_file_and_skip_missing_ones(tmp_path):
    (tmp_path / "dvc.yaml").write_text("plots:\n  - figures\n  - Loss: {x: step}\n"
                                       "  - not_made_yet.png\n")
    for path in ("figures/b/2.png", "figures/a/1.png", "figures/.snakemake_timestamp",
                 "results/models/r/dvclive/plots/metrics/train/loss.tsv"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    assert dvc_plots.targets(tmp_path) == ["figures/a/1.png", "figures/b/2.png", "Loss",
                                           "results/models/r/dvclive/plots/metrics"]
