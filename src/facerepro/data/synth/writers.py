"""Writers: each part as the real dataset's files, and the mirror of their archives with
SHA256SUMS."""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from multiprocessing import Pool
from pathlib import Path
from typing import NamedTuple

import numpy as np

from facerepro.atomic import atomic_path
from facerepro.data.download import sha256_of
from facerepro.data.synth.attributes import ATTRIBUTES
from facerepro.data.synth.config import Nuisance, SynthConfig
from facerepro.data.synth.identity import Identity, make_identity
from facerepro.data.synth.layouts import (
    casia_identities,
    casia_image_counts,
    celeba_layout,
    lfw_layout,
    pairs_text,
)
from facerepro.data.synth.render import encode_jpeg, render
from facerepro.data.synth.shot import attribute_row, sample_shot
from facerepro.data.synth.streams import _STREAM_IMAGE, PARTS, _rng
from facerepro.threads import use_threads

_LANDMARK_NAMES = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                   "leftmouth_x leftmouth_y rightmouth_x rightmouth_y")


class _Job(NamedTuple):
    identity: Identity
    part: str          # image stream
    key: int           # identity index in the image stream
    image: int
    layout: str
    nuisance: Nuisance
    seed: int


def _render_job(job: _Job) -> tuple[bytes, np.ndarray, list[int]]:
    rng = _rng(job.seed, job.part, _STREAM_IMAGE, job.key, job.image)
    shot = sample_shot(job.identity, rng, job.nuisance)
    rgb, landmarks = render(job.identity, shot, job.layout)
    return encode_jpeg(rgb, shot.jpeg_quality), landmarks, attribute_row(job.identity, shot)


def _one_thread() -> None:
    use_threads(1)         # the pool's processes are the job's threads: one each


def _render_all(jobs: list[_Job], workers: int
                ) -> Iterator[tuple[bytes, np.ndarray, list[int]]]:
    if workers <= 1:
        yield from map(_render_job, jobs)
        return
    with Pool(workers, initializer=_one_thread) as pool:
        yield from pool.imap(_render_job, jobs, chunksize=32)


def _write_images(root: Path, paths: list[str], jobs: list[_Job], workers: int,
                  decimals: int) -> tuple[list[str], list[str]]:
    """Render and write the images; return their landmark and attribute lines."""
    landmark_lines, attribute_lines = [], []
    for rel, (jpeg, landmarks, row) in zip(paths, _render_all(jobs, workers), strict=True):
        with atomic_path(root / rel) as tmp:
            tmp.write_bytes(jpeg)
        if decimals:
            coords = " ".join(f"{v:.{decimals}f}" for v in landmarks.ravel())
        else:   # CelebA's own file has integer landmarks
            coords = " ".join(f"{round(v):4d}" for v in landmarks.ravel())
        landmark_lines.append(f"{rel} {coords}")
        attribute_lines.append(rel + "".join(f" {v:2d}" for v in row))
    return landmark_lines, attribute_lines


def _write_text(path: Path, lines: Sequence[str]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines))
    return path


def _attribute_file(rows: list[str]) -> list[str]:
    return [str(len(rows)), " ".join(ATTRIBUTES), *rows]


def write_part(part: str, root: Path, cfg: SynthConfig, workers: int = 1) -> list[Path]:
    """Write one part ("lfw", "casia" or "celeba") as the real dataset's un-archived tree under
    ``root``; return the top-level paths written (image folder first)."""
    root = Path(root)
    writers = {"lfw": _write_lfw, "casia": _write_casia, "celeba": _write_celeba}
    if part not in writers:
        raise ValueError(f"unknown SynthFaces part {part!r}; known: {list(writers)}")
    return writers[part](root, cfg, workers)


def _write_lfw(root: Path, cfg: SynthConfig, workers: int) -> list[Path]:
    layout = lfw_layout(cfg)
    jobs, paths = [], []
    for i, name in enumerate(layout.names):
        identity = make_identity(cfg.seed, "lfw", i, name, cfg.identity_spread)
        for k in range(layout.counts[i]):
            jobs.append(_Job(identity, "lfw", i, k, "wild", cfg.nuisance, cfg.seed))
            paths.append(f"{name}/{name}_{k + 1:04d}.jpg")
    landmarks, attributes = _write_images(root / "lfw", paths, jobs, workers, decimals=2)
    return [root / "lfw",
            _write_text(root / "pairs.txt", [pairs_text(layout).rstrip("\n")]),
            _write_text(root / "lfw_landmarks.txt", [f"image {_LANDMARK_NAMES}", *landmarks]),
            _write_text(root / "lfw_attributes.txt", _attribute_file(attributes))]


def _write_casia(root: Path, cfg: SynthConfig, workers: int) -> list[Path]:
    people = casia_identities(cfg)
    counts = casia_image_counts(cfg)
    jobs, paths = [], []
    for i, (name, source, index) in enumerate(people):
        identity = make_identity(cfg.seed, source, index, name, cfg.identity_spread)
        for k in range(counts[i]):
            jobs.append(_Job(identity, "casia", i, k, "wild", cfg.nuisance, cfg.seed))
            paths.append(f"{i + 1:07d}/{k + 1:03d}.jpg")
    base = root / "CASIA-WebFace"
    landmarks, _ = _write_images(base, paths, jobs, workers, decimals=2)
    _write_text(base / "names.txt", [f"{i + 1:07d} {name}" for i, (name, _, _) in
                                     enumerate(people)])
    _write_text(base / "casia_landmarks.txt", [f"image {_LANDMARK_NAMES}", *landmarks])
    return [base]


def _write_celeba(root: Path, cfg: SynthConfig, workers: int) -> list[Path]:
    files = celeba_layout(cfg)
    identities = [make_identity(cfg.seed, "celeba", i, f"{i + 1}", cfg.identity_spread)
                  for i in range(cfg.celeba.identities)]
    jobs = [_Job(identities[i], "celeba", i, k, "celeba", cfg.nuisance, cfg.seed)
            for i, k, _ in files]
    paths = [f"{n:06d}.jpg" for n in range(1, len(files) + 1)]
    landmarks, attributes = _write_images(root / "img_align_celeba", paths, jobs, workers,
                                          decimals=0)
    count = str(len(files))
    return [root / "img_align_celeba",
            _write_text(root / "list_attr_celeba.txt", _attribute_file(attributes)),
            _write_text(root / "list_landmarks_align_celeba.txt",
                        [count, _LANDMARK_NAMES, *landmarks]),
            _write_text(root / "list_eval_partition.txt",
                        [f"{p} {split}" for p, (_, _, split) in zip(paths, files, strict=True)]),
            _write_text(root / "identity_CelebA.txt",
                        [f"{p} {i + 1}" for p, (i, _, _) in zip(paths, files, strict=True)])]


# Fixed archive timestamps (2000-01-01) so the same config gives byte-identical archives.
_ARCHIVE_MTIME = 946684800
_ZIP_DATE = (2000, 1, 1, 0, 0, 0)
MIRROR_FILES: tuple[str, ...] = (
    "lfw.tgz", "pairs.txt", "lfw_landmarks.txt", "lfw_attributes.txt", "CASIA-WebFace.zip",
    "img_align_celeba.zip", "list_attr_celeba.txt", "list_landmarks_align_celeba.txt",
    "list_eval_partition.txt", "identity_CelebA.txt",
)


def write_mirror(out_dir: Path, cfg: SynthConfig, workers: int = 1) -> dict[str, str]:
    """Write every part, packed as the real datasets ship them, plus ``SHA256SUMS``, into
    ``out_dir``; return {file name: sha256}.

    Everything is built in a hidden folder inside ``out_dir`` and renamed into place at the end,
    SHA256SUMS last, so an interrupted run leaves no partial file under a final name.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".synthfaces-", dir=out_dir))
    try:
        for part in PARTS:
            write_part(part, work, cfg, workers)
        staged = {name: work / name for name in MIRROR_FILES}
        _pack_tgz(work, "lfw", staged["lfw.tgz"])
        _pack_zip(work, "CASIA-WebFace", staged["CASIA-WebFace.zip"])
        _pack_zip(work, "img_align_celeba", staged["img_align_celeba.zip"])
        sums = {name: sha256_of(path) for name, path in sorted(staged.items())}
        sums_file = _write_text(work / "SHA256SUMS", [f"{h}  {n}" for n, h in sums.items()])
        for name, path in staged.items():
            os.replace(path, out_dir / name)
        os.replace(sums_file, out_dir / "SHA256SUMS")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return sums


def _members(root: Path, top: str) -> list[tuple[str, Path]]:
    """(archive name, path) of ``root/top`` and everything under it, sorted by name."""
    base = root / top
    return sorted((p.relative_to(root).as_posix(), p) for p in [base, *base.rglob("*")])


def _pack_tgz(root: Path, top: str, dest: Path) -> None:
    # filename="" and mtime=0 keep the temp name and the clock out of the gzip header.
    with open(dest, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, path in _members(root, top):
            info = tarfile.TarInfo(name)
            info.mtime = _ARCHIVE_MTIME
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.mode, info.size = 0o644, path.stat().st_size
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)


def _pack_zip(root: Path, top: str, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w") as zf:
        for name, path in _members(root, top):
            is_dir = path.is_dir()
            info = zipfile.ZipInfo(name + "/" if is_dir else name, _ZIP_DATE)
            info.create_system = 3   # Unix, whatever the host, for the same bytes everywhere
            if is_dir:
                info.external_attr = (0o40755 << 16) | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = 0o644 << 16
                # JPEGs do not compress; the text files do.
                info.compress_type = (zipfile.ZIP_STORED if name.endswith(".jpg")
                                      else zipfile.ZIP_DEFLATED)
                zf.writestr(info, path.read_bytes())
