"""Safe, idempotent archive extraction.

Every member of every archive is checked before anything is written; one bad member refuses
the whole archive. Refused: absolute paths and any ``..`` component (even one that would stay
inside), device nodes and FIFOs, and links that could lead outside the target:

- a tar symlink is allowed only when its target is relative and has no ``..`` component, so it
  points *down* from its own folder. Every folder of the archive is inside the target, so a
  chain of such links cannot climb out either (a lexical check on ``..`` targets could be
  fooled by a chain; this rule cannot);
- a tar hard link must name an earlier regular file of the same archive;
- a zip symlink is refused: ``zipfile`` would write it as a small file holding the link text.

Tar members are then extracted with tarfile's ``data`` filter as a second line of defence.
Extraction goes to a sibling temporary directory that is renamed into place, and a marker
records the archives' (and copied files') hashes, so a re-run with the same inputs does
nothing and an interrupted one starts over.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from facerepro.data.download import sha256_of


class UnsafeArchiveError(RuntimeError):
    """An archive member could write outside the target, or is not a file or folder."""


def _check_name(archive: Path, name: str, what: str = "member") -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: {what} {name!r} would reach outside the target; "
                                 f"the archive is refused")
    return path


def _check_tar(archive: Path, members: list[tarfile.TarInfo]) -> None:
    files: set[PurePosixPath] = set()
    for m in members:
        path = _check_name(archive, m.name)
        if m.issym():
            target = PurePosixPath(m.linkname)
            if not m.linkname or target.is_absolute() or ".." in target.parts:
                raise UnsafeArchiveError(
                    f"{archive}: symlink {m.name!r} -> {m.linkname!r} could point outside the "
                    f"target (only links down from their own folder are allowed)")
        elif m.islnk():
            target = _check_name(archive, m.linkname, "hard link target")
            if target not in files:
                raise UnsafeArchiveError(f"{archive}: hard link {m.name!r} -> {m.linkname!r} "
                                         f"does not name an earlier file of the archive")
        elif m.ischr() or m.isblk() or m.isfifo():
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device node or FIFO")
        elif not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} has unsupported type "
                                     f"{m.type!r}")
        if m.isfile():
            files.add(path)


def _check_zip(archive: Path, infos: list[zipfile.ZipInfo]) -> None:
    for info in infos:
        _check_name(archive, info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symlink; zip "
                                     f"links are refused")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is not a file or "
                                     f"folder (mode {oct(kind)})")


def extract_archive(archive: Path, target: Path) -> None:
    """Unpack one archive into ``target`` after checking every member (module docstring)."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            _check_zip(archive, infos)
            zf.extractall(target, members=infos)
        return
    # Mode "r" detects the compression, so a plain tar under a .tar.gz name still opens.
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        _check_tar(archive, members)
        tf.extractall(target, members=members, filter="data")


def extract(archives: list[Path], copies: list[Path], target: Path, marker: Path) -> dict:
    """Extract ``archives`` and copy plain ``copies`` into ``target``; write ``marker`` last.

    Returns the marker's record. When the marker already records the same hashes nothing is
    done. On any error the partial extraction is removed and ``target`` is left as it was.
    """
    record = {"archives": {a.name: sha256_of(a) for a in archives},
              "files": {c.name: sha256_of(c) for c in copies}}
    if marker.exists() and json.loads(marker.read_text()) == record:
        return record
    with staged_tree(target, marker, record) as tmp:
        for archive in archives:
            extract_archive(archive, tmp)
        for copy in copies:
            shutil.copy2(copy, tmp / copy.name)
    return record


@contextmanager
def staged_tree(target: Path, marker: Path, record: dict) -> Iterator[Path]:
    """Yield an empty folder beside ``target`` to fill; when the block succeeds it replaces
    ``target`` and ``marker`` gets ``record`` (last, so a marker always means a whole tree); on
    any error the folder is removed and ``target`` is left as it was."""
    tmp = target.with_name(target.name + ".extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    marker_tmp = marker.with_name(marker.name + ".tmp")
    marker_tmp.write_text(json.dumps(record, indent=1))
    os.replace(marker_tmp, marker)
