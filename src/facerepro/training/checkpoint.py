"""Full training state on disk: written atomically, read back with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from facerepro.atomic import atomic_path

LATEST = "latest.pt"


def save(directory: str | Path, state: dict[str, Any]) -> Path:
    dest = Path(directory) / LATEST
    with atomic_path(dest) as tmp:
        torch.save(state, tmp)
    return dest


def load(directory: str | Path) -> dict[str, Any] | None:
    """The latest checkpoint, or None when there is none yet."""
    path = Path(directory) / LATEST
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RuntimeError(
            f"{path} cannot be read ({exc}); delete it to restart the run from scratch"
        ) from exc
