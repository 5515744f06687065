"""A folder of one's own faces as a dataset part: copied into the part's extraction folder.

A ``kind: folder`` source (:func:`facerepro.data.registry.folder_spec`) names a local directory,
or an archive of one (``.zip``, ``.tgz``, ``.tar.gz``, ``.tar``), laid out as LFW
(``<Name>/<file>``) or CASIA-WebFace (``<id>/<file>``); nothing is downloaded. The part's
extraction folder then holds:

- ``images/``: the folder's files, hard-linked where the file system allows, else copied (an
  archive is unpacked with the checks of :mod:`facerepro.data.extract`; an archive holding one
  folder of person folders is unpacked from inside it);
- the optional pairs, landmarks and attributes files under the names the registry gives them
  (``pairs.txt`` or ``pairs.csv``, ``landmarks.txt``, ``attributes.txt``). A relative path in
  the config is one inside the folder (or archive), an absolute one may be anywhere;
- ``.extracted.json``, written last: the sha256 of every file read (each file of a directory;
  an archive; an optional file given by an absolute path). A re-run with the same record does
  nothing; any change copies the folder afresh.

Names starting with a dot and ``__MACOSX`` folders (a file manager's or an archiver's
metadata, never photos) are left out.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from facerepro.data.download import sha256_of
from facerepro.data.extract import extract_archive, staged_tree
from facerepro.data.registry import is_archive

IMAGES = "images"


class FolderError(ValueError):
    """The configured folder or one of its files is missing or unusable; the message says
    which and how to fix it."""


def _skipped(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder`` (relative, sorted), without metadata entries."""
    out = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not _skipped(d)]
        out += [Path(top, n).relative_to(folder) for n in names if not _skipped(n)]
    return sorted(out)


def inputs(source: str | Path) -> list[str]:
    """The files a copy of ``source`` reads: every file of a folder (so that an added, removed
    or edited photo makes the workflow copy it again), or the archive; none if it is missing
    (the config check names it)."""
    source = Path(source)
    if source.is_dir():
        return [str(source / f) for f in _files(source)]
    return [str(source)] if source.exists() else []


def _record(source: Path, files: dict[str, str]) -> dict:
    """What the copy is made of: configured names and the sha256 of every file read."""
    if source.is_dir():
        read = {f.as_posix(): sha256_of(source / f) for f in _files(source)}
    else:
        read = {source.name: sha256_of(source)}
    for given in files.values():
        if Path(given).is_absolute() and Path(given).is_file():
            read[given] = sha256_of(given)
    return {"source": str(source.resolve()), "files": files, "sha256": read}


def _link_tree(source: Path, dest: Path) -> None:
    for rel in _files(source):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source / rel, dest / rel)
        except OSError:
            shutil.copy2(source / rel, dest / rel)


def _unpack(archive: Path, dest: Path) -> None:
    extract_archive(archive, dest)
    for entry in list(dest.iterdir()):
        if _skipped(entry.name):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    entries = list(dest.iterdir())
    # One folder of person folders (``zip -r faces.zip faces/``): its content is the folder.
    if len(entries) == 1 and entries[0].is_dir() and any(e.is_dir() for e in entries[0].iterdir()):
        wrapper = entries[0].rename(dest.with_name(dest.name + ".wrapper"))
        dest.rmdir()
        wrapper.rename(dest)


def copy_folder(source: str | Path, files: dict[str, str], target: str | Path,
                marker: str | Path, key: str = "path") -> dict:
    """Copy the folder (or unpack the archive) ``source`` and its optional ``files`` ({name in
    the part: configured path}) into ``target``; write ``marker`` last; return its record.

    ``key`` is the config key that named ``source`` (``datasets.<name>.path``), for errors.
    """
    source, target, marker = Path(source), Path(target), Path(marker)
    if not source.exists():
        raise FolderError(f"{key} = {str(source)!r}: no such folder or archive (relative paths "
                          f"are from {Path.cwd()}); correct the path in the config")
    if not (source.is_dir() or is_archive(source.name)):
        raise FolderError(f"{key} = {str(source)!r} is neither a folder nor an archive "
                          f"(.zip, .tgz, .tar.gz, .tar); point it at the folder of person "
                          f"folders")
    record = _record(source, files)
    if marker.exists() and json.loads(marker.read_text()) == record:
        return record
    with staged_tree(target, marker, record) as tmp:
        if source.is_dir():
            _link_tree(source, tmp / IMAGES)
        else:
            _unpack(source, tmp / IMAGES)
        for name, given in files.items():
            path = Path(given) if Path(given).is_absolute() else tmp / IMAGES / given
            if not path.is_file():
                where = "" if Path(given).is_absolute() else f" inside {source}"
                raise FolderError(f"{given!r}{where} is missing: the config names it as the "
                                  f"folder's {name.split('.')[0]} file; correct the path, or "
                                  f"drop the key")
            shutil.copyfile(path, tmp / name)
    return record
