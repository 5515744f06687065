"""The GPU check's dry run (``--device cpu --quick``): every check runs and its verdicts hold,
so the script is ready when a GPU is at hand. Its speed figures mean nothing on the CPU."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run(tmp_path):
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--device", "cpu", "--quick",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())["rows"]
    assert {r["check"] for r in rows} == {"mtcnn", "features", "lease", "resume", "ddp", "train"}
    assert not [r for r in rows if r["measure"] == "FAILED"]
    judged = [r for r in rows if r["ok"]]
    # cpu against cpu: detections, features, resumed and DDP weights agree exactly
    assert len(judged) >= 9 and all(r["ok"] == "yes" for r in judged), judged
    assert "| check | measure |" in (tmp_path / "gpu_check.md").read_text()
