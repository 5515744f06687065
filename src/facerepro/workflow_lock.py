"""Recovery from a killed Snakemake run: its locks stay in ``.snakemake/locks`` and the next run
stops with "Directory cannot be locked ... --unlock". ``make run`` calls this module first; it
unlocks only when no live Snakemake process works in the directory, so it never breaks into a
run that is still going.

    python -m facerepro.workflow_lock [snakemake options]   # e.g. --configfile config/test.yaml
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

PROC = Path("/proc")


def _snakemake_cwds() -> Iterator[Path]:
    """The working directories of this user's running Snakemake processes."""
    for proc in PROC.iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = (proc / "cwd").resolve(strict=True)
        except OSError:  # gone since the listing, or another user's process
            continue
        # `snakemake ...`, `python .../bin/snakemake ...` or `python -m snakemake ...`; not a
        # shell whose command line merely mentions it, nor a job's script under .snakemake/
        if any(Path(arg.decode(errors="replace")).name == "snakemake" for arg in argv):
            yield cwd


def stale_lock(workdir: Path) -> bool:
    """True when ``workdir/.snakemake/locks`` holds locks and no running Snakemake process has
    ``workdir`` as its working directory. False without /proc (not Linux): then nobody can tell,
    and Snakemake's own error stays the safe answer."""
    locks = workdir / ".snakemake" / "locks"
    if not PROC.is_dir() or not locks.is_dir() or not any(locks.iterdir()):
        return False
    workdir = workdir.resolve()
    return all(cwd != workdir for cwd in _snakemake_cwds())


def main(argv: list[str]) -> int:
    """Unlock the current directory when its lock is stale, saying so; otherwise do nothing."""
    if not stale_lock(Path.cwd()):
        return 0
    print("facerepro: a killed Snakemake run left its locks and no Snakemake process runs here: "
          "unlocking", file=sys.stderr)
    return subprocess.run([sys.executable, "-m", "snakemake", "--unlock", *argv]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
