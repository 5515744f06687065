"""Shared plumbing for the benchmarks: timing, peak memory, and one JSON + table per bench.

Every benchmark measures its target next to a baseline in the same process and reports the
ratio, so the figures compare across machines. ``--quick`` shrinks sizes so the test suite can
check that each bench still runs (and still agrees with its baseline) without timing it.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path("results/bench")


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks the bench runs, figures mean nothing")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON to write (default results/bench/<name>.json)")
    return parser.parse_args()


def best_time(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Fastest wall time of ``repeat`` calls (seconds) and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(name: str, rows: list[dict[str, Any]], out: Path | None = None) -> Path:
    """Print the rows as a Markdown table and write them to JSON."""
    out = out or RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"bench": name, "python": sys.version.split()[0], "rows": rows},
                              indent=2))
    tmp.replace(out)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    print(f"## {name}\n")
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(_fmt(row.get(k, "")) for k in keys) + " |")
    print(f"\nwritten to {out}")
    return out


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
