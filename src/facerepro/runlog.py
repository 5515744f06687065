"""Send a rule script's logging, warnings and progress bars to its Snakemake log file."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path


def to_file(path: str | Path) -> None:
    """Append (an interrupted job's log stays readable above the restart) from a marked start."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    stream = open(path, "a", buffering=1)   # noqa: SIM115  (lives as long as the process)
    stream.write(f"===== {datetime.now().isoformat(timespec='seconds')} job started =====\n")
    sys.stderr = stream
    logging.basicConfig(stream=stream, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
