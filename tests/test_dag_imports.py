"""Parsing the workflow imports no heavy library: every `snakemake` call, a dry run included,
parses the rules, and torch or matplotlib alone would add a second or more to each."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "matplotlib", "seaborn", "faiss", "sklearn", "scipy"}


def test_dry_run_imports_no_heavy_library(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile",
         str(ROOT / "config/test.yaml"), "--workflow-profile", "none", "--directory",
         str(tmp_path), "-s", str(ROOT / "Snakefile")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    # `import time: self | cumulative | name`, one line per module imported
    imported = {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2}
    assert {"facerepro.config", "facerepro.views", "facerepro.report.groups"} <= imported
    assert not {name.split(".")[0] for name in imported} & HEAVY
