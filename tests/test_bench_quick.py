"""Every benchmark still runs: each ``bench/bench_*.py`` with ``--quick`` writes non-empty rows.

Benches with a quick test of their own, which also checks agreement with their baseline, are
left to it (``bench_identification`` in test_identification.py, ``bench_compact_search`` in
test_compact_search.py).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTED_ELSEWHERE = {"bench_identification.py", "bench_compact_search.py"}
BENCHES = sorted(p.name for p in (ROOT / "bench").glob("bench_*.py")
                 if p.name not in TESTED_ELSEWHERE)


@pytest.mark.parametrize("bench", BENCHES)
def test_bench_quick_runs(bench, tmp_path):
    out = tmp_path / "x.json"
    done = subprocess.run([sys.executable, f"bench/{bench}", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(out.read_text())["rows"]
