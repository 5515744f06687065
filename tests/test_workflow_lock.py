"""Recovery from a killed run: the lock guard `make run` calls first (facerepro.workflow_lock)
unlocks only when no Snakemake process works in the directory."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workflow_repo import command_env, copy_repo, run, snakemake

from facerepro.workflow_lock import stale_lock

RUN = (sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "config/config.yaml")


def _locked(workdir: Path) -> Path:
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("resources/raw/synth/lfw/pairs.txt\n")
    return workdir


def _fake_snakemake(tmp_path: Path) -> Path:
    """An executable called `snakemake` that only waits, run as `python .../bin/snakemake`."""
    exe = tmp_path / "bin" / "snakemake"
    exe.parent.mkdir(parents=True)
    exe.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    exe.chmod(0o755)
    return exe


def _wait_for_a_job(workdir: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until Snakemake holds its locks and has marked a started job's output incomplete."""
    state = workdir / ".snakemake"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "snakemake ended before starting a job"
        locks = list((state / "locks").glob("*"))
        started = [f for f in (state / "incomplete").rglob("*") if f.is_file()]
        if locks and started:
            return
        time.sleep(0.2)
    raise AssertionError(f"no job started within {timeout} s")


def test_lock_is_stale_only_without_a_snakemake_process_in_the_directory(tmp_path):
    workdir = _locked(tmp_path / "work")
    live = subprocess.Popen([_fake_snakemake(tmp_path)], cwd=workdir)
    # a shell whose command line names snakemake, and a Snakemake run elsewhere, do not count
    shell = subprocess.Popen(["sh", "-c", "sleep 60; echo snakemake"], cwd=workdir,
                             start_new_session=True)
    elsewhere = subprocess.Popen([_fake_snakemake(tmp_path / "other")], cwd=tmp_path)
    try:
        assert not stale_lock(workdir)
    finally:
        live.kill()
        live.wait()
    try:
        assert stale_lock(workdir)
    finally:
        os.killpg(shell.pid, signal.SIGKILL)  # and its sleep
        elsewhere.kill()
        for proc in (shell, elsewhere):
            proc.wait()


def test_no_locks_is_not_stale(tmp_path):
    assert not stale_lock(tmp_path)
    (tmp_path / ".snakemake" / "locks").mkdir(parents=True)  # what a clean exit leaves
    assert not stale_lock(tmp_path)


def test_a_killed_run_is_unlocked_and_the_workflow_plans_again(tmp_path):
    repo = copy_repo(tmp_path)
    proc = subprocess.Popen(RUN, cwd=repo, env=command_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_a_job(repo, proc)
        assert not stale_lock(repo), "the running workflow's lock was taken for stale"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert stale_lock(repo)
    blocked = subprocess.run(RUN, cwd=repo, env=command_env(), capture_output=True, text=True,
                             timeout=120)
    assert blocked.returncode != 0 and "--unlock" in blocked.stderr, blocked.stderr[-2000:]

    said = run(repo, sys.executable, "-m", "facerepro.workflow_lock", "--configfile",
               "config/config.yaml")
    assert "unlocking" in said and "Unlocked working directory" in said, said
    assert not stale_lock(repo)
    assert "cannot be locked" not in snakemake(repo, "-n")
