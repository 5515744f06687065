"""Runs replicated over seeds: the config expands them, the DAG trains each, and the report's
numbers and claim tests include the seeds' variance."""

import numpy as np
import pytest
import yaml
from test_config import ROOT, _dry_run_jobs

from facerepro.config import (
    ConfigError,
    base_run,
    evaluations,
    run_settings,
    seed_groups,
    validate,
)
from facerepro.evaluation import uncertainty
from facerepro.report.groups import category
from facerepro.report.html import deviations
from facerepro.report.tables import HELD, HELD_NOISE, paper_tables


def _seeded(**seeds):
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    for run, values in seeds.items():
        config["runs"][run]["seeds"] = values
    return config


def test_each_extra_seed_is_a_replicate_run_scored_by_the_runs_protocols():
    config = validate(_seeded(softmax=[3, 1, 2]))
    runs = list(config["runs"])
    at = runs.index("softmax")
    assert runs[at:at + 3] == ["softmax", "softmax@seed1", "softmax@seed2"]
    assert [config["runs"][r]["seed"] for r in runs[at:at + 3]] == [3, 1, 2]
    assert "seeds" not in config["runs"]["softmax@seed1"]
    # a replicate differs from its run in the seed alone
    for replicate in ("softmax@seed1", "softmax@seed2"):
        assert {k: v for k, v in config["runs"][replicate].items() if k != "seed"} == \
            {k: v for k, v in config["runs"]["softmax"].items() if k not in ("seed", "seeds")}
    for name, protocol in config["protocols"].items():
        if "softmax" in (protocol.get("runs") or ()):
            assert {"softmax@seed1", "softmax@seed2"} <= set(protocol["runs"]), name
    assert seed_groups(config)["softmax"] == ["softmax", "softmax@seed1", "softmax@seed2"]
    assert seed_groups(config)["facenet"] == ["facenet"]
    assert base_run("softmax@seed2") == "softmax" and base_run("softmax") == "softmax"


def test_expanding_twice_changes_nothing():
    config = validate(_seeded(softmax=[0, 1]))
    again = validate(yaml.safe_load(yaml.safe_dump(config)))
    assert again == config


def test_a_replicate_starts_from_the_same_seed_of_its_init_run():
    config = _seeded(softmax=[0, 1])
    config["runs"]["tuned"] = {**config["runs"]["softmax"], "init_from": "softmax",
                               "seeds": [0, 1, 2]}
    config["runs"]["softmax"].pop("seeds")
    config["runs"]["softmax"]["seeds"] = [0, 1]
    validate(config)
    assert config["runs"]["tuned"]["init_from"] == "softmax"             # seed 0: the run
    assert config["runs"]["tuned@seed1"]["init_from"] == "softmax@seed1"
    assert config["runs"]["tuned@seed2"]["init_from"] == "softmax"       # softmax has no seed 2


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["runs"]["softmax"].update(seed=4, seeds=[0, 1]), "not the first of their seeds"),
    (lambda c: c["runs"].update({"x@seed1": dict(c["runs"]["softmax"])}), "rename these runs"),
    (lambda c: c["runs"]["softmax"].update(seeds=[1, 1]), "non-unique"),
])
def test_bad_seeds_are_named(edit, message):
    config = _seeded()
    edit(config)
    with pytest.raises(ConfigError, match=message):
        validate(config)


def test_the_dag_trains_and_scores_every_replicate(tmp_path):
    path = tmp_path / "seeded.yaml"
    path.write_text(yaml.safe_dump(_seeded(softmax=[0, 1, 2], pixels_pca=[0, 5])))
    counts = _dry_run_jobs(str(path), tmp_path / "work")
    config = validate(yaml.safe_load(path.read_text()))
    plain = validate(_seeded())
    assert counts["train"] == len(config["runs"]) == len(plain["runs"]) + 3
    assert counts["evaluate"] == len(evaluations(config))
    assert len(evaluations(config)) > len(evaluations(plain))


def test_replicates_share_their_runs_report_category_and_deviations():
    config = validate(_seeded(softmax=[0, 1]))
    assert category("softmax@seed1", "lfw_verification") == \
        category("softmax", "lfw_verification")
    assert not any("@seed" in line for line in deviations(config))
    assert not any("seed" in line.split(":")[-1] for line in deviations(config))


# --- the two-level bootstrap ----------------------------------------------------------------

def test_one_seed_gives_the_item_bootstrap():
    values = (np.random.default_rng(3).random(400) < 0.7).astype(float)
    low, high = uncertainty.seeded_interval(values[None])
    ref_low, ref_high = uncertainty.mean_interval(values)
    # two bootstraps of 2,000 resamples each: their ends agree to Monte Carlo error
    assert low == pytest.approx(ref_low, abs=0.01) and high == pytest.approx(ref_high, abs=0.01)


def test_without_item_noise_the_spread_is_the_seeds_plug_in_variance():
    # every item of a seed has the seed's value: only the seeds vary. The mean of k seeds drawn
    # with replacement has variance (population variance of the seeds) / k.
    seeds = np.array([0.60, 0.70, 0.95, 0.80])
    values = np.repeat(seeds[:, None], 50, axis=1)
    stats = uncertainty._two_level([values], [1.0])
    assert stats.var() == pytest.approx(seeds.var() / len(seeds), rel=0.1)
    low, high = uncertainty.seeded_interval(values)
    assert seeds.min() <= low < seeds.mean() < high <= seeds.max()


def test_seeded_difference_of_identical_runs_is_zero_and_not_significant():
    values = (np.random.default_rng(4).random((3, 300)) < 0.8).astype(float)
    one = uncertainty.seeded_difference(values[:1], values[:1])
    assert (one.diff, one.low, one.high, one.p) == (0.0, 0.0, 0.0, 1.0)
    # with three seeds each run draws its own seeds: the same runs differ by seed noise alone
    test = uncertainty.seeded_difference(values, values)
    assert test.diff == 0.0 and test.low < 0 < test.high and test.p > 0.5
    assert test.test == "seed+item bootstrap"
    with pytest.raises(ValueError, match="same items"):
        uncertainty.seeded_difference(values, values[:, :10])


# --- the report's cells and claims -----------------------------------------------------------

N = 1000


def _correct(count: int, order: np.ndarray) -> np.ndarray:
    out = np.zeros(N)
    out[order[:count]] = 1
    return out


def _payload(correct: np.ndarray) -> dict:
    ids = [str(i) for i in range(N)]
    return {"scorers": {"cosine": {"values": {"accuracy_mean": float(correct.mean())},
                                   "items": {"accuracy_mean": {"ids": ids,
                                                               "values": correct.tolist()}}}}}


def _reference(claim: dict) -> dict:
    column = {"label": "acc", "protocol": "lfw", "scorer": "cosine", "value": "accuracy_mean",
              "scale": 100}
    return {"key": "sphereface", "paper": "SphereFace", "title": "t", "tables": [{
        "id": "t", "title": "t", "columns": [column],
        "rows": [{"label": "a", "run": "a"}, {"label": "b", "run": "b"}], "claims": [claim]}]}


def test_a_difference_inside_the_seeds_noise_is_not_held():
    # One seed of a (850 of 1,000 right) beats b (780) by McNemar; over a's three seeds (850,
    # 750, 860 right) a seed-resample at or below b has probability 1/27 (all three 750)
    # without item noise: p >= 2/27, and item noise puts the means near 78.3 (two 750s) across
    # b too, so the claim holds only within noise.
    rng = np.random.default_rng(0)
    a = [_correct(c, rng.permutation(N)) for c in (850, 750, 860)]
    b = _correct(780, rng.permutation(N))
    claim = {"text": "a beats b", "order": ["a", "b"]}
    single = {("a", "lfw"): _payload(a[0]), ("b", "lfw"): _payload(b)}
    [paper] = paper_tables(single, [_reference(claim)])
    assert paper["tables"][0]["claims"][0]["status"] == HELD
    seeded = {**single, ("a@seed1", "lfw"): _payload(a[1]), ("a@seed2", "lfw"): _payload(a[2])}
    groups = {"a": ["a", "a@seed1", "a@seed2"], "b": ["b"]}
    [paper] = paper_tables(seeded, [_reference(claim)], groups)
    [table] = paper["tables"]
    cell = table["rows"][0]["cells"][0]
    assert cell["reproduced"] == pytest.approx(100 * (0.85 + 0.75 + 0.86) / 3)
    assert cell["seed_sd"] == pytest.approx(100 * np.std([0.85, 0.75, 0.86], ddof=1))
    assert cell["seed_values"] == pytest.approx([0.85, 0.75, 0.86])
    [claim_result] = table["claims"]
    assert claim_result["status"] == HELD_NOISE
    assert "seed+item bootstrap" in claim_result["tests"][0]
    assert "(3 seeds)" in claim_result["detail"]
    p = float(claim_result["tests"][0].split(" p ")[1])
    assert 2 / 27 <= p < 0.5


def test_seeds_without_items_are_tested_on_their_values():
    payload = lambda v: {"scorers": {"cosine": {"values": {"accuracy_mean": v}}}}  # noqa: E731
    metrics = {("a", "lfw"): payload(0.90), ("a@seed1", "lfw"): payload(0.91),
               ("a@seed2", "lfw"): payload(0.92), ("b", "lfw"): payload(0.80)}
    claim = {"text": "a beats b", "order": ["a", "b"]}
    [paper] = paper_tables(metrics, [_reference(claim)], {"a": ["a", "a@seed1", "a@seed2"]})
    [table] = paper["tables"]
    # every seed of a is above b: no seed-resample reaches b
    assert table["claims"][0]["status"] == HELD
    low, high = table["rows"][0]["cells"][0]["interval"]
    assert 90.0 <= low < 91.0 < high <= 92.0


def test_seeding_a_run_leaves_its_trained_settings_as_they_were():
    """The train and evaluate jobs take ``run_settings``: a run given more seeds keeps the
    params it had, so Snakemake retrains only the new replicates, not the run itself."""
    plain = validate(yaml.safe_load((ROOT / "config/test.yaml").read_text()))
    seeded = validate(_seeded(softmax=[0, 1, 2]))
    assert seeded["runs"]["softmax"]["seeds"] == [0, 1, 2]
    assert run_settings(seeded["runs"]["softmax"]) == run_settings(plain["runs"]["softmax"])
    assert run_settings(seeded["runs"]["softmax@seed1"]) == {
        **run_settings(plain["runs"]["softmax"]), "seed": 1}
