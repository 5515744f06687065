"""Fetch one file and verify its sha256 before it appears under its final name."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    pass


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, dest: str | Path, sha256: str) -> Path:
    """Copy ``url`` (file://, http://, https://) to ``dest``; keep it only if the hash matches.

    The bytes land in ``dest.part`` and are renamed when verified, so an interrupted or
    corrupt download never sits under the final name.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and sha256_of(dest) == sha256:
        return dest
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
    except OSError as exc:
        raise RuntimeError(
            f"could not fetch {url}: {exc}. Place the file by hand at {dest} "
            f"(sha256 {sha256}) and re-run."
        ) from exc
    got = sha256_of(tmp)
    if got != sha256:
        tmp.unlink()
        raise ChecksumError(
            f"{url}: sha256 {got} does not match the expected {sha256}; the file was not kept. "
            f"Re-fetch it, or check the source's checksum list."
        )
    os.replace(tmp, dest)
    return dest
