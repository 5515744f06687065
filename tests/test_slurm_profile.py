"""profiles/slurm through the pinned snakemake-executor-plugin-slurm, against a fake SLURM.

The fake `sbatch` on PATH records its arguments and answers a job id, the fake `sacct` reports
every job FAILED, so Snakemake stops after its first submissions: what is checked is the sbatch
call the plugin really builds from the profile for a GPU training job, a DDP one and a CPU job.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles/slurm/config.v8+.yaml"
ACCOUNT, CPU_PARTITION, GPU_PARTITION = "facerepro_acct", "cpu_part", "gpu_part"

# The SLURM commands the plugin calls, as small Python scripts; FAKE_SLURM_DIR holds the state.
FAKE_SLURM = {
    "sbatch": """
import fcntl, json, os, sys
with open(os.path.join(os.environ["FAKE_SLURM_DIR"], "sbatch.jsonl"), "a+") as fh:
    fcntl.flock(fh, fcntl.LOCK_EX)          # the plugin submits from two threads
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
    fh.seek(0)
    print(4200 + len(fh.readlines()))
""",
    "sacct": """
import os
path = os.path.join(os.environ["FAKE_SLURM_DIR"], "sbatch.jsonl")
n = len(open(path).readlines()) if os.path.exists(path) else 0
print("\\n".join(f"{4201 + i}|FAILED" for i in range(n)))
""",
    "sacctmgr": f"print({ACCOUNT!r})",
    "scontrol": "print('MaxArraySize = 1001\\nMinJobAge = 300 sec')",
    "sinfo": "",
}


def _profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def _resources(rule: str) -> dict:
    """What the profile gives a rule: its defaults, overridden by its set-resources."""
    profile = _profile()
    return {**profile["default-resources"], **profile["set-resources"].get(rule, {})}


def _env(tmp_path: Path) -> dict:
    fake = tmp_path / "fake_slurm"
    fake.mkdir()
    for name, code in FAKE_SLURM.items():
        path = fake / name
        path.write_text(f"#!{sys.executable}\n{code}")
        path.chmod(0o755)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "SBATCH_", "SNAKEMAKE_"))}
    env.update(PATH=f"{fake}{os.pathsep}{env['PATH']}", FAKE_SLURM_DIR=str(tmp_path),
               FACEREPRO_SLURM_ACCOUNT=ACCOUNT, FACEREPRO_SLURM_PARTITION=CPU_PARTITION,
               FACEREPRO_SLURM_GPU_PARTITION=GPU_PARTITION)
    return env


def _workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    for item in ("Snakefile", "rules", "workflow", "config", "profiles"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / item)
    return work


def _options(argv: list[str]) -> dict[str, str]:
    """sbatch's arguments as {option: value}; flags without a value map to ''."""
    options, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if "=" in arg:
            key, value = arg.split("=", 1)
            options[key] = value
        elif i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            options[arg] = argv[i + 1]
            i += 1
        else:
            options[arg] = ""
        i += 1
    return options


def test_sbatch_arguments_for_gpu_ddp_and_cpu_jobs(tmp_path):
    work = _workdir(tmp_path)
    config = yaml.safe_load((work / "config/test.yaml").read_text())
    config["device"] = "cuda"                 # plan GPU jobs; nothing runs here
    config["runs"]["softmax"]["gpus"] = 2     # a DDP run
    (work / "config/slurm.yaml").write_text(yaml.safe_dump(config))
    # placeholders for the training shard: only the jobs under test are planned (allowed-rules)
    shard = work / "results/aligned/synth/casia/sphere_112x96"
    shard.mkdir(parents=True)
    for name in ("images.npy", "index.parquet"):
        (shard / name).touch()
    targets = ["results/models/softmax/model.pt", "results/models/sphereface_m4/model.pt",
               "resources/mirror/synth/SHA256SUMS"]
    # As README.md says to run it; fast status checks and no retry only shorten the test.
    cmd = [sys.executable, "-m", "snakemake", *targets, "--workflow-profile", "profiles/slurm",
           "--configfile", "config/slurm.yaml", "--allowed-rules", "train", "synth_mirror",
           "--retries", "0", "--latency-wait", "0", "--seconds-between-status-checks", "1",
           "--slurm-init-seconds-before-status-checks", "1"]
    out = subprocess.run(cmd, cwd=work, env=_env(tmp_path), capture_output=True, text=True,
                         timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode != 0 and "SLURM status is: 'FAILED'" in log, log[-3000:]
    assert "profiles/default" not in log        # its cores / gpu limits do not apply

    calls = [json.loads(line) for line in (tmp_path / "sbatch.jsonl").read_text().splitlines()]
    jobs = {_options(argv)["--comment"]: _options(argv) for argv in calls}
    assert set(jobs) == {"rule_train_wildcards_softmax", "rule_train_wildcards_sphereface_m4",
                         "rule_synth_mirror_wildcards_synth"}, calls
    train = _resources("train")
    for run, gpus in (("sphereface_m4", 1), ("softmax", 2)):
        job = jobs[f"rule_train_wildcards_{run}"]
        assert job["-A"] == ACCOUNT and job["-p"] == GPU_PARTITION
        assert job["-t"] == str(train["runtime"]) and job["--mem"] == str(train["mem_mb"])
        assert job["--gpus"] == str(gpus) and job["--nodes"] == "1"
        assert job["--cpus-per-gpu"] == str(train["cpus_per_gpu"])
        assert "--cpus-per-task" not in job and "--ntasks" not in job
        assert job["-D"] == str(work) and job["--export"] == "ALL"
        # the job runs Snakemake again on the node, for exactly this job
        assert "--executor slurm-jobstep" in job["--wrap"]
        assert f"--target-jobs 'train:run={run}'" in job["--wrap"]
    # a CPU job gets the profile's defaults
    cpu, job = _resources("synth_mirror"), jobs["rule_synth_mirror_wildcards_synth"]
    assert job["-A"] == ACCOUNT and job["-p"] == CPU_PARTITION
    assert job["-t"] == str(cpu["runtime"]) and job["--mem"] == str(cpu["mem_mb"])
    assert job["--cpus-per-task"] == str(cpu["cpus_per_task"]) and job["--ntasks"] == "1"
    assert "--gpus" not in job and "--cpus-per-gpu" not in job


def test_paper_config_plans_its_training_on_the_gpu_partition(tmp_path):
    work = _workdir(tmp_path)
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--workflow-profile",
                          "profiles/slurm", "--configfile", "config/paper.yaml"],
                         cwd=work, env=_env(tmp_path), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    config = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    planned = {}
    for block in out.stdout.split("\nrule ")[1:]:
        if block.startswith("train:"):
            run = block.split("wildcards: run=")[1].split()[0]
            planned[run] = next(line for line in block.splitlines() if "resources:" in line)
    assert set(planned) == set(config["runs"])
    learned = [run for run, spec in config["runs"].items()
               if spec["method"] not in ("lbp", "pixels_pca")]
    assert learned
    for run in learned:
        resources = planned[run].replace(",", " ").split()
        assert f"slurm_partition={GPU_PARTITION}" in resources, planned[run]
        assert "gpu=1" in resources and "cpus_per_gpu=8" in resources, planned[run]
    assert not (work / "results").exists()


def test_profile_keys_are_documented():
    doc = (ROOT / "config/README.md").read_text()
    profile = _profile()
    keys = set(profile) | set(profile["default-resources"]) | {
        key for rule in profile["set-resources"].values() for key in rule}
    missing = sorted(key for key in keys if f"`{key}`" not in doc)
    assert not missing, f"config/README.md does not document {missing} of {PROFILE}"
