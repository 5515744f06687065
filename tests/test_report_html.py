"""The HTML report without a browser: missing pieces degrade into notes, provenance helpers,
landmark-source counts, the attributes figure's order, figure groups."""

import re

import pytest
from report_fixture import write_fixture

from facerepro.report import provenance
from facerepro.report.figures import imbalance_order
from facerepro.report.groups import OTHER, SHARED, group_of, readers
from facerepro.report.html import (
    Plot,
    attribute_table,
    build,
    landmark_sources,
    write_figures,
)
from facerepro.report.tables import PAPERS

ACC = {"label": "acc (%)", "protocol": "lfw_verification", "scorer": "cosine",
       "value": "accuracy_mean", "scale": 100}


def _reference(key, tables):
    return {"key": key, "paper": key.upper(), "title": f"{key} title", "tables": tables}


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return write_fixture(tmp_path_factory.mktemp("artifacts"))


def _build(fixture, tmp_path, references, metrics=None):
    kwargs = dict(fixture["kwargs"])
    if metrics is not None:
        kwargs["metrics"] = metrics
    dest = tmp_path / "index.html"
    build(fixture["config"], **kwargs, dest=dest, references=references)
    return dest.read_text()


def test_tables_whose_runs_are_missing_say_not_run(fixture, tmp_path):
    absent = {"id": "ablation", "title": "Ablation nobody ran", "columns": [ACC],
              "rows": [{"label": "x", "run": "no_such_run", "reported": [99.0]},
                       {"label": "y", "run": "nor_this", "reported": [98.0]}],
              "claims": [{"text": "x beats y", "order": ["x", "y"]}]}
    partial = {"id": "partly", "title": "Partly run", "columns": [ACC],
               "rows": [{"label": "softmax", "run": "softmax", "reported": [97.9]},
                        {"label": "m9", "run": "sphereface_m9", "reported": [99.9]},
                        # in the config, but not evaluated on this protocol
                        {"label": "lbp", "run": "lbp", "protocol": "lfw_clustering",
                         "reported": [90.0]}]}
    # only the softmax verification metrics: one ROC figure, a fast build
    metrics = {k: v for k, v in fixture["kwargs"]["metrics"].items()
               if k == ("softmax", "lfw_verification")}
    html = _build(fixture, tmp_path, [_reference("sphereface", [absent, partial])], metrics)

    ablation = html[html.index('id="table-ablation"') - 600:html.index('id="table-partly"')]
    assert "Not run: nothing in this table is measured by this config" in ablation
    assert "it lacks the runs no_such_run, nor_this" in ablation
    assert ablation.count('<span class="not-run">not run</span>') == 2
    assert re.search(r'class="not-run">not run</td><td class="claim muted">no reproduced', html)

    partly = html[html.index("<h3>Partly run</h3>"):html.index('id="table-partly"')]
    assert "runs sphereface_m9 are not in this config" in partly
    assert "not evaluated: lbp on lfw_clustering" in partly
    assert "Not run: nothing" not in partly
    # every other paper is still listed, as having no reported numbers in this build
    for key in set(PAPERS) - {"sphereface"}:
        assert f'id="paper-{key}"' in html
    assert html.count("No reported numbers for this paper") == len(PAPERS) - 1


def test_the_page_references_nothing_outside_itself(fixture, tmp_path):
    metrics = {k: v for k, v in fixture["kwargs"]["metrics"].items()
               if k[1] == "lfw_identification"}
    html = _build(fixture, tmp_path, [], metrics)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", html)
    assert "url(" not in html and "<script" not in html and "<link" not in html
    assert html.count("<img ") == 1 + fixture["qa"]        # the CMC and the QA grids
    assert 'id="synthetic-banner"' in html


def test_wall_times_sum_jobs_and_leave_out_the_report(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = {"train/a.tsv": ["10.0", "14.0"],         # one job run twice (repeat): mean 12
             "train/sub/b.tsv": ["3.0"], "evaluate/x/y.tsv": ["1.5"], "report/report.tsv": ["9"]}
    for name, seconds in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + "".join(f"{s}\t0\t{100 + i}\t0\t0\t0\t0\t0\t0\t0\n"
                                         for i, s in enumerate(seconds)))
    (tmp_path / "empty").mkdir()
    rows = {r["rule"]: r for r in provenance.wall_times(tmp_path)}
    assert set(rows) == {"train", "evaluate"}
    assert rows["train"]["jobs"] == 2
    assert rows["train"]["total_s"] == pytest.approx(15.0)
    assert rows["train"]["max_s"] == pytest.approx(12.0)
    assert rows["train"]["peak_rss_mb"] == pytest.approx(101.0)
    assert rows["evaluate"]["total_s"] == pytest.approx(1.5)


def test_provenance_names_the_packages_and_the_commit():
    versions = provenance.package_versions(("numpy", "no-such-distribution-xyz"))
    assert versions["numpy"].count(".") >= 1
    assert versions["no-such-distribution-xyz"] == "not installed"
    state = provenance.git_state()
    assert state["commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", state["commit"])
    assert provenance.git_state("/") == {"commit": "unknown", "dirty": None}


def test_landmark_sources_count_sources_and_fallbacks(fixture):
    sources, rows = landmark_sources(fixture["kwargs"]["indexes"])
    assert sources == ["dataset", "mtcnn"]
    lfw, casia = rows
    assert lfw["sources"] == {"dataset": 38} and lfw["fallback"] == 0
    assert casia["sources"] == {"mtcnn": 38} and casia["fallback"] == 3
    assert casia["fallback_pct"] == pytest.approx(100 * 3 / 38)
    assert casia["min_score"] == pytest.approx(0.99)       # fallback rows have no score


def test_attributes_are_ordered_by_imbalance():
    payload = {"kind": "attributes", "scorers": {"knc": {"values": {}, "n": {}, "curves": {
        "attributes": {"names": ["Male", "Bald", "Attractive", "Young"],
                       "balanced_accuracy": [0.9, 0.6, 0.8, 0.7],
                       "imbalance": [11, 48, 1, 29]}}}}}
    tables = attribute_table({("clmle_attributes", "celeba"): payload,
                              ("softmax", "lfw"): {"kind": "lfw_pairs", "scorers": {}}})
    assert list(tables) == ["celeba"]
    table = tables["celeba"]
    assert table.loc[table["attribute"] == "Bald", "balanced_accuracy"].item() == 0.6
    assert list(imbalance_order(table)["attribute"]) == ["Attractive", "Male", "Young", "Bald"]


def test_figure_groups_follow_the_tables_that_read_them():
    refs = [_reference("sphereface", [{"id": "t", "columns": [ACC],
                                       "rows": [{"label": "a", "run": "m4"}]}]),
            _reference("facenet", [{"id": "u", "columns": [{**ACC, "run": "fn"}],
                                    "rows": [{"label": "q", "protocol": "jpeg"}]}])]
    read_by = readers(refs)
    assert group_of([("m4", "lfw_verification")], read_by) == "sphereface"
    assert group_of([("fn", "jpeg")], read_by) == "facenet"
    assert group_of([("m4", "lfw_verification"), ("fn", "jpeg")], read_by) == SHARED
    assert group_of([("lbp", "lfw_verification")], read_by) == OTHER


def test_write_figures_replaces_the_whole_folder(tmp_path):
    dest = tmp_path / "figures"
    (dest / "old").mkdir(parents=True)
    (dest / "old" / "stale.png").write_bytes(b"x")
    write_figures([Plot("sphereface", "verification", "roc_a", "t", "c", b"png")], dest)
    assert [p.relative_to(dest).as_posix() for p in dest.rglob("*.png")] == \
        ["sphereface/roc_a.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["figures"]      # no temporary left
