"""The test workflow as a user runs it under DVC: a git copy of the repository with
config/test.yaml as its config, after `dvc repro`, a commit of the lock file, and
`dvc push` to a temporary remote. Built once per test session (tests/conftest.py): the end-to-end
tests read its outputs, the DVC tests pull them into a fresh clone.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def command_env() -> dict:
    """The environment commands run in: no profile or DVC setting of the caller's."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SNAKEMAKE_PROFILE", "FACEREPRO_PROFILE") and not k.startswith("DVC_")}
    # stage commands call `snakemake` from PATH: this interpreter's
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", DVC_NO_ANALYTICS="1")
    return env


def _run(cwd: Path, *cmd: str, timeout: float = 600) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=command_env(), capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


def run(cwd: Path, *cmd: str, timeout: float = 600) -> str:
    """The command's output, stdout then stderr; the command must succeed."""
    out = _run(cwd, *cmd, timeout=timeout)
    return out.stdout + out.stderr


def stdout(cwd: Path, *cmd: str, timeout: float = 600) -> str:
    """The command's stdout alone (its answer, without the log); it must succeed."""
    return _run(cwd, *cmd, timeout=timeout).stdout


def dvc(cwd: Path, *args: str, timeout: float = 600) -> str:
    return run(cwd, sys.executable, "-m", "dvc", *args, timeout=timeout)


def dvc_json(cwd: Path, *args: str) -> dict | list:
    return json.loads(_run(cwd, sys.executable, "-m", "dvc", *args, "--json").stdout)


def snakemake(cwd: Path, *args: str) -> str:
    return run(cwd, sys.executable, "-m", "snakemake", *args, "--configfile",
               "config/config.yaml")


def git(cwd: Path, *args: str) -> str:
    return run(cwd, "git", "-c", "user.name=FaceRepro test", "-c",
               "user.email=test@facerepro.invalid", *args)


def copy_repo(repo: Path) -> Path:
    """The repository's files as git sees them (tracked and new, not ignored; no results) in
    ``repo``, a git repository of one commit with config/test.yaml as the config."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    for name in listed.stdout.decode().split("\0"):
        src = ROOT / name
        if name and src.is_file() and not name.startswith("results/"):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    shutil.copy(ROOT / "config/test.yaml", repo / "config/config.yaml")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "code")
    return repo


def build_repo(repo: Path, remote: Path) -> Path:
    """``copy_repo`` after `dvc repro`, a commit and `dvc push`."""
    copy_repo(repo)
    dvc(repo, "repro", timeout=3600)
    # what a user commits after `dvc repro`: the lock file; every output is DVC's
    git(repo, "add", "dvc.lock")
    left = [line for line in git(repo, "status", "--porcelain").splitlines()
            if not line.startswith("A ")]
    assert not left, f"dvc repro left files git sees: {left}"
    git(repo, "commit", "-qm", "results")
    dvc(repo, "remote", "modify", "--local", "local", "url", str(remote))
    dvc(repo, "push")
    return repo
