"""Where the report's numbers come from: code version, packages, machine, and time per rule."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd

# The distributions whose versions change what the workflow computes or how it is run.
PACKAGES = ("torch", "numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "scikit-image",
            "faiss-cpu", "opencv-python-headless", "snakemake", "dvc", "dvclive", "matplotlib",
            "seaborn", "jinja2", "jsonschema")
# The report's own benchmark is of the previous report job, not of the run being reported.
OWN_RULES = ("report",)


def git_state(where: str | Path = Path(__file__).parent) -> dict:
    """``{"commit", "dirty"}`` of the checkout holding the code (the package's directory, as
    the trainer records it); ``commit`` is "unknown" and ``dirty`` None outside a git checkout.
    Read-only: ``git diff`` never writes the index."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": "unknown", "dirty": None}
        return {"commit": head.stdout.strip(),
                "dirty": git("diff", "--quiet", "HEAD", "--").returncode != 0}
    except OSError:      # no git on this machine
        return {"commit": "unknown", "dirty": None}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python's and each distribution's version ("not installed" where absent)."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine() -> dict:
    """The machine rendering the report: platform, CPU count, visible CUDA devices."""
    # torch only here, so that importing the report module stays light
    import torch

    gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "gpus": gpus}


def wall_times(root: str | Path, skip: tuple[str, ...] = OWN_RULES) -> list[dict]:
    """Per rule, from the Snakemake benchmark TSVs under ``root/{rule}/``: jobs, summed and
    longest wall time (column ``s``), peak resident memory (``max_rss``, MB).

    A TSV holds one row per repetition of one job (``benchmark: repeat(...)``), so a job counts
    its mean time once. Every TSV present counts: jobs of this invocation and earlier ones whose
    outputs are still current (a re-run job overwrites its own TSV).
    """
    rows = []
    for rule_dir in sorted(p for p in Path(root).glob("*") if p.is_dir()):
        if rule_dir.name in skip:
            continue
        jobs = [pd.read_csv(tsv, sep="\t") for tsv in sorted(rule_dir.rglob("*.tsv"))]
        jobs = [job for job in jobs if len(job)]
        if not jobs:
            continue
        seconds = [float(pd.to_numeric(job["s"], errors="coerce").mean()) for job in jobs]
        rss = [pd.to_numeric(job.get("max_rss", pd.Series(dtype=float)), errors="coerce").max()
               for job in jobs]
        peak = max((r for r in rss if pd.notna(r)), default=None)
        rows.append({"rule": rule_dir.name, "jobs": len(jobs), "total_s": sum(seconds),
                     "max_s": max(seconds), "peak_rss_mb": peak})
    return rows
