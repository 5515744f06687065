"""The whole workflow on config/test.yaml in a temporary copy of the repository."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from facerepro import paths
from facerepro.config import load

ROOT = Path(__file__).resolve().parents[1]


def _snakemake(workdir, *args):
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
           "config/test.yaml", "--workflow-profile", "none", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    for item in ("Snakefile", "rules", "workflow", "config"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / item)
    out = _snakemake(work)
    assert out.returncode == 0, out.stderr[-5000:]
    return work


@pytest.mark.e2e
def test_report_and_metrics_are_sane(workdir):
    config = load(workdir / "config/test.yaml")
    html = (workdir / paths.report()).read_text()
    for run in config["runs"]:
        assert run in html
        metrics = json.loads((workdir / paths.metrics(run, "lfw_verification")).read_text())
        m = metrics["scorers"]["cosine"]
        assert m["folds"] == config["datasets"]["synth"]["lfw"]["folds"]
        assert len(m["fold_accuracy"]) == m["folds"]
        assert 0.0 <= min(m["fold_accuracy"]) and max(m["fold_accuracy"]) <= 1.0
        assert 0.5 <= m["auc"] <= 1.0
    assert "data:image/png;base64," in html      # ROC and QA figures are inlined


@pytest.mark.e2e
def test_trained_model_beats_chance(workdir):
    m = json.loads((workdir / paths.metrics("softmax", "lfw_verification")).read_text())
    assert m["scorers"]["cosine"]["accuracy_mean"] > 0.55


@pytest.mark.e2e
def test_manifest_accounts_for_every_file(workdir):
    for dataset in ("synth/lfw", "synth/casia"):
        manifest = pd.read_parquet(workdir / paths.manifest(dataset))
        files = [p for p in (workdir / paths.extracted(dataset)).rglob("*.jpg")]
        assert len(manifest) == len(files)
        index = pd.read_parquet(workdir / paths.aligned_index(dataset, "sphere_112x96"))
        assert len(index) == (manifest["status"] == "kept").sum()


@pytest.mark.e2e
def test_second_run_does_nothing(workdir):
    out = _snakemake(workdir, "-n")
    assert out.returncode == 0
    assert "Nothing to be done" in out.stdout + out.stderr
