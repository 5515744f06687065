"""`use_threads` sizes every pool of a fresh process: those loaded before the call and after."""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from test_config import ROOT, _snakemake

from facerepro.threads import ENV_VARS, use_threads

# Each case prints what the pools report; `CALL` is replaced by the call under test.
PROBE = """
import json, os, sys
import numpy, threadpoolctl
{before}
CALL
loaded_before = sorted(m for m in ("torch", "faiss", "cv2") if m in sys.modules)
import torch, faiss, cv2
print(json.dumps({{
    "torch": torch.get_num_threads(), "faiss": faiss.omp_get_max_threads(),
    "cv2": cv2.getNumThreads(), "loaded_before": loaded_before,
    "pools": [[p["internal_api"], p["num_threads"]] for p in threadpoolctl.threadpool_info()],
    "env": {{v: os.environ.get(v) for v in {env_vars!r}}},
    "child_env": os.popen("env").read()}}))
"""


def probe(call: str, before: str = "") -> dict:
    """What a fresh process's pools report after ``before`` then ``call``; no thread setting
    of the caller's environment reaches it."""
    code = PROBE.format(before=before, env_vars=ENV_VARS).replace("CALL", call)
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def one_thread_everywhere(report: dict) -> None:
    assert report["torch"] == 1
    assert report["faiss"] == 1
    assert report["cv2"] == 1
    assert report["pools"] and all(n == 1 for _, n in report["pools"]), report["pools"]
    assert {p[0] for p in report["pools"]} >= {"openblas", "openmp"}
    assert report["env"] == dict.fromkeys(ENV_VARS, "1")
    for var in ENV_VARS:                                      # what a child process inherits
        assert f"{var}=1\n" in report["child_env"]


@pytest.fixture(scope="module")
def default() -> dict:
    """The control: without the call every pool takes every core, so the checks can fail."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: every pool has one thread anyway")
    report = probe("pass")
    assert report["torch"] > 1 and report["cv2"] > 1
    assert any(n > 1 for _, n in report["pools"])
    return report


def test_libraries_loaded_after_the_call_take_its_count(default):
    report = probe("from facerepro.threads import use_threads; use_threads(1)")
    assert report["loaded_before"] == []         # the call imports none of them itself
    one_thread_everywhere(report)


def test_libraries_loaded_before_the_call_are_resized(default):
    report = probe("from facerepro.threads import use_threads; use_threads(1)",
                   before="import torch, faiss, cv2; torch.ones(1) + 1")
    assert report["loaded_before"] == ["cv2", "faiss", "torch"]
    one_thread_everywhere(report)


def test_a_job_needs_a_thread():
    with pytest.raises(ValueError, match="at least one thread"):
        use_threads(0)


@pytest.mark.parametrize(("job_threads", "workers", "share"), [("4", 2, "2"), ("3", 2, "1"),
                                                                 ("1", 4, "1")])
def test_torchrun_workers_share_the_jobs_threads(monkeypatch, job_threads, workers, share):
    from facerepro.training import launch

    started = []
    monkeypatch.setattr(launch.subprocess, "run", lambda cmd, **kw: started.append(kw["env"]))
    monkeypatch.setenv("OMP_NUM_THREADS", job_threads)
    launch.torchrun(workers, {"run": {}})
    [env] = started
    assert {var: env[var] for var in ENV_VARS} == dict.fromkeys(ENV_VARS, share)
    assert os.environ["OMP_NUM_THREADS"] == job_threads       # this process keeps its own


def _planned(tmp_path, cpu_threads: int, setting: str = "threads",
             device: str = "cpu") -> dict[str, set[int]]:
    """The threads (or priority) `snakemake -n --cores 4` gives each rule's jobs (a dry run
    prints a job's threads only when they are more than 1, its priority only when not 0)."""
    config = yaml.safe_load((ROOT / "config/test.yaml").read_text())
    config["cpu_threads"], config["device"] = cpu_threads, device
    name = f"{device}{cpu_threads}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    out = _snakemake("-n", "--cores", "4", "--configfile", str(path), "--workflow-profile",
                     "none", "--directory", str(tmp_path / name),
                     "-s", str(ROOT / "Snakefile"))
    assert out.returncode == 0, out.stderr + out.stdout
    planned: dict[str, set[int]] = {}
    unset = 1 if setting == "threads" else 0
    for job in out.stdout.split("\nrule ")[1:]:
        value = re.search(rf"^\s+{setting}: (\d+)$", job, re.MULTILINE)
        planned.setdefault(job.split(":")[0], set()).add(int(value[1]) if value else unset)
    return planned


COMPUTE_RULES = ("train", "features")
WIDE_DATA_RULES = {"clean": 4, "landmarks": 2, "align": 2}     # their own threads on CUDA


def test_cpu_jobs_take_cpu_threads_whatever_the_cores(tmp_path):
    """Also the data jobs: a wider one would wait for two cores free at once while 1-thread
    trainings keep starting."""
    one, three = _planned(tmp_path, 1), _planned(tmp_path, 3)
    for rule in (*COMPUTE_RULES, *WIDE_DATA_RULES):
        assert one[rule] == {1} and three[rule] == {3}
    assert one["synth_mirror"] == three["synth_mirror"] == {2}   # the first job: runs alone


def test_on_cuda_trainings_take_the_machine_and_data_jobs_their_own(tmp_path):
    planned = _planned(tmp_path, 1, device="cuda")
    for rule in COMPUTE_RULES:
        assert planned[rule] == {4}
    for rule, threads in WIDE_DATA_RULES.items():
        assert planned[rule] == {threads}


DATA_RULES = ("synth_mirror", "fetch", "extract", "clean", "landmarks", "faces", "align")


def test_data_jobs_start_before_trainings_and_trainings_before_the_rest(tmp_path):
    """On two cores, the long trainings must not be left to the end to run alone."""
    priority = _planned(tmp_path, 1, "priority")
    data = set.union(*(priority[rule] for rule in DATA_RULES))
    rest = set.union(*(v for rule, v in priority.items() if rule not in ("train", *DATA_RULES)))
    assert len(data) == len(priority["train"]) == 1
    assert min(data) > min(priority["train"]) > max(rest)
