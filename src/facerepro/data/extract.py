"""Safe, idempotent archive extraction.

Members with absolute paths, ``..`` components, or links are refused before anything is
written: an archive must not be able to write outside its target directory. Extraction goes
to a sibling temporary directory that is renamed into place, and a marker records the archive
hashes, so a re-run with the same archives does nothing and an interrupted one starts over.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from facerepro.data.download import sha256_of


class UnsafeArchiveError(RuntimeError):
    pass


def _check_member(archive: Path, name: str, is_link: bool = False) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would write outside the target")
    if is_link:
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a link; links are refused")


def _extract_one(archive: Path, target: Path) -> None:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                _check_member(archive, info.filename, is_link)
            zf.extractall(target)
        return
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            _check_member(archive, m.name, m.issym() or m.islnk())
            if not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is not a file or dir")
        tf.extractall(target, members=members, filter="data")


def extract(archives: list[Path], copies: list[Path], target: Path, marker: Path) -> dict:
    """Extract ``archives`` and copy plain ``copies`` into ``target``; write ``marker`` last."""
    record = {"archives": {a.name: sha256_of(a) for a in archives},
              "files": {c.name: sha256_of(c) for c in copies}}
    if marker.exists() and json.loads(marker.read_text()) == record:
        return record
    tmp = target.with_name(target.name + ".extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for archive in archives:
        _extract_one(archive, tmp)
    for copy in copies:
        shutil.copy2(copy, tmp / copy.name)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    marker_tmp = marker.with_name(marker.name + ".tmp")
    marker_tmp.write_text(json.dumps(record, indent=1))
    os.replace(marker_tmp, marker)
    return record
