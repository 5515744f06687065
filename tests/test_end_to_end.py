"""The whole workflow on config/test.yaml, run once for the suite under DVC (tests/conftest.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from facerepro import paths
from facerepro.config import evaluations, load
from facerepro.evaluation.metrics import read as read_metrics
from facerepro.report.groups import category
from facerepro.report.tables import PAPERS


def _snakemake(workdir, *args):
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
           "config/test.yaml", "--workflow-profile", "none", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def workdir(workflow_repo):
    """The whole test workflow, run once for the suite by `dvc repro` (tests/conftest.py)."""
    return workflow_repo


@pytest.mark.e2e
def test_the_workflow_tests_share_one_worker(workdir, request):
    """One build of the workflow repository for the suite. A pytest whose node ids xdist cannot
    tag (9.2, pyproject.toml) spreads these tests over the workers, and each builds it."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        assert request.node.nodeid.endswith("@workflow_repo"), request.node.nodeid


@pytest.mark.e2e
def test_report_and_metrics_are_sane(workdir):
    config = load(workdir / "config/test.yaml")
    html = (workdir / paths.report()).read_text()
    for run in config["runs"]:
        assert run in html
    for run, protocol in evaluations(config):
        if protocol != "lfw_verification":
            continue
        metrics = read_metrics(workdir / paths.metrics(run, "lfw_verification"))
        assert set(metrics["scorers"]) == set(config["protocols"]["lfw_verification"]["scorers"])
        for m in metrics["scorers"].values():
            assert m["n"]["folds"] == config["datasets"]["synth"]["lfw"]["folds"]
            assert len(m["per_fold"]["accuracy"]) == m["n"]["folds"]
            assert 0.0 <= min(m["per_fold"]["accuracy"]) and max(m["per_fold"]["accuracy"]) <= 1
            assert 0.0 <= m["values"]["auc"] <= 1.0
        assert metrics["scorers"]["cosine"]["values"]["auc"] >= 0.5
    assert "data:image/png;base64," in html      # ROC and QA figures are inlined


@pytest.mark.e2e
def test_trained_model_beats_chance(workdir):
    m = read_metrics(workdir / paths.metrics("softmax", "lfw_verification"))
    assert m["scorers"]["cosine"]["values"]["accuracy_mean"] > 0.55


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


@pytest.mark.e2e
def test_joint_bayesian_trains_only_on_held_out_people(workdir):
    config = load(workdir / "config/test.yaml")
    held = config["holdout"]["synth/casia"]["identities"]
    manifest = pd.read_parquet(workdir / paths.manifest("synth/casia"))
    kept = manifest[manifest["status"] == "kept"]
    held_people = set(kept.loc[kept["split"] == "holdout", "identity"])
    assert len(held_people) == held
    info = json.loads((workdir / paths.model_info("softmax")).read_text())
    assert info["classes"] == kept["identity"].nunique() - held
    assert info["train_images"] == (kept["split"] == "train").sum()
    jb = np.load(workdir / paths.features("softmax", "synth/casia", "holdout"))
    assert set(jb["identity"]) == held_people
    m = read_metrics(workdir / paths.metrics("softmax", "lfw_verification"))
    assert m["provenance"]["joint_bayesian_train"].endswith("synth/casia/holdout.npz")


@pytest.mark.e2e
def test_identification_metrics_follow_the_configured_splits(workdir):
    config = load(workdir / "config/test.yaml")
    protocol = config["protocols"]["lfw_identification"]
    m = read_metrics(workdir / paths.metrics("softmax", "lfw_identification"))
    entry = m["scorers"]["cosine"]
    assert entry["n"]["closed_gallery"] == protocol["closed_set"]["n_gallery"]
    assert entry["n"]["impostor_probes"] == protocol["open_set"]["n_impostor"]
    cmc = entry["curves"]["cmc"]["y"]
    assert cmc[0] == entry["values"]["rank1"] and all(np.diff(cmc) >= 0) and cmc[-1] <= 1
    for far in protocol["fars"]:
        assert entry["values"][f"far@far={far:g}"] <= far
    assert "Identification results" in (workdir / paths.report()).read_text()


@pytest.mark.e2e
def test_protocols_run_only_on_their_runs_and_views(workdir):
    config = load(workdir / "config/test.yaml")
    metrics = {p.relative_to(workdir / "results/metrics").as_posix()
               for p in (workdir / "results/metrics").rglob("*.json")}
    face_runs = [name for name, run in config["runs"].items() if run["labels"] == "identity"]
    expected = {f"{run}/{protocol}.json" for protocol, spec in config["protocols"].items()
                for run in spec.get("runs") or face_runs}
    assert metrics == expected
    # the center-crop and JPEG views of the FaceNet run are their own features files
    lfw = workdir / "results/features/facenet/synth/lfw"
    clean, jpeg = np.load(lfw / "all.npz"), np.load(lfw / "all~jpeg10.npz")
    center = np.load(lfw / "all~center_112x96.npz")
    np.testing.assert_array_equal(clean["image_id"], jpeg["image_id"])
    assert not np.allclose(clean["features"], jpeg["features"])
    assert not np.allclose(clean["features"], center["features"])
    assert (workdir / paths.aligned_index("synth/lfw", "center_112x96")).exists()
    assert (workdir / paths.aligned_index("synth/casia", "box_112x96")).exists()


@pytest.mark.e2e
def test_clustering_and_angular_fisher_metrics(workdir):
    c = read_metrics(workdir / paths.metrics("facenet", "lfw_clustering"))["scorers"]["cosine"]
    assert 0 <= c["values"]["f_measure"] <= 1 and 0 <= c["values"]["nmi"] <= 1
    assert c["n"]["clusters"] == c["n"]["identities"]          # the oracle count
    a = read_metrics(workdir / paths.metrics("sphereface_m4", "lfw_angular_fisher"))
    values = a["scorers"]["angular"]["values"]
    assert values["afs"] == pytest.approx(values["s_w"] / values["s_b"])


@pytest.mark.e2e
def test_report_has_the_paper_tables_with_checked_claims(workdir):
    html = (workdir / paths.report()).read_text()
    for heading in ("SphereFace", "FaceNet", "Table 3: the angular margin m",
                    "Table 6: ablation", "Clustering the test identities"):
        assert heading in html
    assert "A-Softmax m=4 &gt; m=1 &gt; original softmax" in html
    assert html.count('class="not-run"') > 0          # the ablations are not in test.yaml


@pytest.mark.e2e
def test_report_shows_every_paper_its_figures_and_provenance(workdir):
    html = (workdir / paths.report()).read_text()
    for key in PAPERS:
        assert f'id="paper-{key}"' in html
    assert 'id="synthetic-banner"' in html and 'id="wall-times-table"' in html
    figures = sorted((workdir / paths.report_figures()).rglob("*.png"))
    assert figures and html.count("<img ") >= len(figures)


@pytest.mark.e2e
def test_snakemake_report_collects_the_flagged_outputs(workdir):
    out = _snakemake(workdir, "--report", "results/report/snakemake.html")
    assert out.returncode == 0, out.stderr[-5000:]
    text = (workdir / "results/report/snakemake.html").read_text()
    # Snakemake's report lists its categories as one JSON object: category -> subcategory ->
    # files. Each metrics file sits under the paper whose tables read it.
    start = text.index("var categories = ") + len("var categories = ")
    categories, _ = json.JSONDecoder().raw_decode(text[start:])
    assert {"Data and alignment", "Report", "DeepID2+"} <= set(categories)
    config = load(workdir / "config/test.yaml")
    for run, protocol in evaluations(config):
        assert paths.metrics(run, protocol) in categories[category(run, protocol)][protocol]


@pytest.mark.e2e
def test_clmle_runs_start_from_their_init_and_are_scored(workdir):
    info = json.loads((workdir / paths.model_info("clmle")).read_text())
    assert info["init_from"] == "softmax" and info["steps"] == 20
    attrs = read_metrics(workdir / paths.metrics("clmle_attributes", "celeba_attributes"))
    entry = attrs["scorers"]["knc"]
    curve = entry["curves"]["attributes"]
    assert len(curve["names"]) == entry["n"]["attributes"] > 0
    assert entry["values"]["mean_balanced_accuracy"] == pytest.approx(
        np.mean(curve["balanced_accuracy"]))
    assert all(0 <= level <= 50 for level in curve["imbalance"])
    table8 = read_metrics(workdir / paths.metrics("clmle_powerlaw", "powerlaw_classification"))
    n = table8["scorers"]["knc"]["n"]
    config = load(workdir / "config/test.yaml")["runs"]["clmle_powerlaw"]["imbalance"]
    assert n["classes"] == config["classes"]
    assert n["test"] == config["classes"] * config["test_per_class"]
    assert n["largest_class"] == config["l_max"]        # L_1 = l_max / (1 + 0)


@pytest.mark.e2e
def test_every_item_record_averages_to_its_summary(workdir):
    kinds = set()
    for path in (workdir / "results/metrics").rglob("*.json"):
        metrics = read_metrics(path)
        for entry in metrics["scorers"].values():
            for key, record in entry.get("items", {}).items():
                kinds.add(metrics["kind"])
                assert len(set(record["ids"])) == len(record["ids"]), path
                assert np.mean(record["values"]) == pytest.approx(entry["values"][key]), path
    assert {"lfw_pairs", "occlusion", "sparsity", "attributes",
            "imbalanced_classification"} <= kinds


@pytest.mark.e2e
def test_report_shows_each_claims_verdict_and_paired_tests(workdir):
    """The rendered claims are those the metrics give, verdicts and test lines alike."""
    import html as html_lib
    import re

    from facerepro.report.tables import claim_summary, paper_tables

    payloads = {(m["run"], m["protocol"]): m
                for m in map(read_metrics, (workdir / "results/metrics").rglob("*.json"))}
    papers = paper_tables(payloads)
    expected = [(c["text"], c["status"], "; ".join(c["tests"]))
                for paper in papers for table in paper["tables"] for c in table["claims"]]
    text = (workdir / paths.report()).read_text()
    shown = re.findall(r'<tr><td class="claim">(.*?)</td><td class="[^"]+">(.*?)</td>'
                       r'<td class="claim muted">.*?</td><td class="claim muted">(.*?)</td></tr>',
                       text, re.S)
    assert [tuple(html_lib.unescape(x) for x in row) for row in shown] == expected
    counts = claim_summary(papers)
    assert f'{counts["held within noise"]} held within noise</span>' in text
    assert f'{counts["not run"]} not run</span>' in text
    assert any("McNemar p" in tests for _, _, tests in expected)


@pytest.mark.e2e
def test_deepid2plus_verification_term_acts_on_every_layer(workdir):
    """The contrastive term acts only through different-person pairs inside its margin: the
    training log's last share must be above zero on FC-1..FC-4, else Verif is dead weight."""
    import re

    log = (workdir / "logs/train/deepid2plus.log").read_text()
    last = re.findall(r"step \d+ loss .*", log)[-1]
    shares = dict(re.findall(r"(fc\d)/inside_margin ([0-9.]+)", last))
    assert sorted(shares) == ["fc1", "fc2", "fc3", "fc4"], last
    assert all(float(v) > 0 for v in shares.values()), last
