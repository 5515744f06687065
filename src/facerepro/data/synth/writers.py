"""Writers: each part as the real dataset's files, and the mirror of their archives with
SHA256SUMS."""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import Pool
from pathlib import Path
from typing import NamedTuple

import numpy as np

from facerepro.atomic import atomic_path
from facerepro.data.download import sha256_of
from facerepro.data.synth.attributes import ATTRIBUTES
from facerepro.data.synth.config import Nuisance, SynthConfig, YtfPart
from facerepro.data.synth.identity import Identity, make_identity
from facerepro.data.synth.layouts import (
    casia_identities,
    casia_image_counts,
    celeba_layout,
    distractor_image_counts,
    lfw_layout,
    pairs_text,
    splits_text,
    ytf_layout,
)
from facerepro.data.synth.render import encode_jpeg, render
from facerepro.data.synth.shot import attribute_row, sample_shot, video_shots
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


class _VideoJob(NamedTuple):
    identity: Identity
    key: int           # identity index in the ytf stream
    video: int
    part: YtfPart
    nuisance: Nuisance
    seed: int


def _render_video(job: _VideoJob) -> list[tuple[bytes, np.ndarray]]:
    """A video's frames in order: one job, since each frame's nuisance walks on from the last."""
    rng = _rng(job.seed, "ytf", _STREAM_IMAGE, job.key, job.video)
    shots = video_shots(job.identity, rng, job.nuisance, job.part.frames, job.part.motion,
                        job.part.smoothness)
    frames = []
    for shot in shots:
        rgb, landmarks = render(job.identity, shot, "wild")
        frames.append((encode_jpeg(rgb, shot.jpeg_quality), landmarks))
    return frames


def _one_thread() -> None:
    use_threads(1)         # the pool's processes are the job's threads: one each


def _render_all(jobs: list, workers: int, work: Callable = _render_job,
                chunksize: int = 32) -> Iterator:
    if workers <= 1:
        yield from map(work, jobs)
        return
    with Pool(workers, initializer=_one_thread) as pool:
        yield from pool.imap(work, jobs, chunksize=chunksize)


def _write_images(root: Path, paths: list[str], jobs: list[_Job], workers: int,
                  decimals: int) -> tuple[list[str], list[str]]:
    """Render and write the images; return their landmark and attribute lines."""
    landmark_lines, attribute_lines = [], []
    for rel, (jpeg, landmarks, row) in zip(paths, _render_all(jobs, workers), strict=True):
        with atomic_path(root / rel) as tmp:
            tmp.write_bytes(jpeg)
        landmark_lines.append(f"{rel} {_coords(landmarks, decimals)}")
        attribute_lines.append(rel + "".join(f" {v:2d}" for v in row))
    return landmark_lines, attribute_lines


def _coords(landmarks: np.ndarray, decimals: int) -> str:
    if decimals:
        return " ".join(f"{v:.{decimals}f}" for v in landmarks.ravel())
    return " ".join(f"{round(v):4d}" for v in landmarks.ravel())  # CelebA's integer landmarks


def _write_text(path: Path, lines: Sequence[str]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines))
    return path


def _attribute_file(rows: list[str]) -> list[str]:
    return [str(len(rows)), " ".join(ATTRIBUTES), *rows]


def write_part(part: str, root: Path, cfg: SynthConfig, workers: int = 1) -> list[Path]:
    """Write one part (one of ``PARTS``) as the real dataset's un-archived tree under
    ``root``; return the top-level paths written (image folder first)."""
    root = Path(root)
    writers = {"lfw": _write_lfw, "casia": _write_casia, "celeba": _write_celeba,
               "ytf": _write_ytf, "facescrub": _write_facescrub,
               "distractors": _write_distractors}
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



def _write_facescrub(root: Path, cfg: SynthConfig, workers: int) -> list[Path]:
    """MegaFace's FaceScrub probes: ``facescrub_images/<Name>/<Name>_<k>.jpg``, several photos
    of each person; the landmark file sits in the image folder, as CASIA's does."""
    part = cfg.facescrub
    jobs, paths = [], []
    for i in range(part.identities):
        name = f"Synth_Scrub_{i + 1:04d}"
        identity = make_identity(cfg.seed, "facescrub", i, name, cfg.identity_spread)
        for k in range(part.images_per_identity):
            jobs.append(_Job(identity, "facescrub", i, k, "wild", cfg.nuisance, cfg.seed))
            paths.append(f"{name}/{name}_{k + 1:04d}.jpg")
    base = root / "facescrub_images"
    landmarks, _ = _write_images(base, paths, jobs, workers, decimals=2)
    _write_text(base / "facescrub_landmarks.txt", [f"image {_LANDMARK_NAMES}", *landmarks])
    return [base]


def _write_distractors(root: Path, cfg: SynthConfig, workers: int) -> list[Path]:
    """MegaFace's distractors: ``megaface_images/<nnn>/<person>/<k>.jpg``, a folder per person
    in folders of a thousand (MegaFace's Flickr tree is two levels deep too)."""
    jobs, paths = [], []
    for i, count in enumerate(distractor_image_counts(cfg)):
        identity = make_identity(cfg.seed, "distractors", i, f"{i + 1:07d}", cfg.identity_spread)
        for k in range(count):
            jobs.append(_Job(identity, "distractors", i, k, "wild", cfg.nuisance, cfg.seed))
            paths.append(f"{i // 1000:03d}/{i + 1:07d}/{k + 1:03d}.jpg")
    base = root / "megaface_images"
    landmarks, _ = _write_images(base, paths, jobs, workers, decimals=2)
    _write_text(base / "megaface_landmarks.txt", [f"image {_LANDMARK_NAMES}", *landmarks])
    return [base]

YTF_LANDMARKS = "ytf_landmarks.txt"


def _write_ytf(root: Path, cfg: SynthConfig, workers: int) -> list[Path]:
    """YouTubeFaces/frame_images_DB/<Name>/<video>/<video>.<frame>.jpg (frames numbered from 1,
    as YTF's ``0.555.jpg`` names its frames), the frames' landmarks in
    YouTubeFaces/ytf_landmarks.txt (SynthFaces' own file, as for the other parts: YTF ships
    face boxes, not five points) and splits.txt."""
    layout = ytf_layout(cfg)
    base = root / "YouTubeFaces"
    jobs, folders = [], []
    for i, name in enumerate(layout.names):
        identity = make_identity(cfg.seed, "ytf", i, name, cfg.identity_spread)
        for v in range(layout.videos[i]):
            jobs.append(_VideoJob(identity, i, v, cfg.ytf, cfg.nuisance, cfg.seed))
            folders.append(f"{name}/{v}")
    landmarks = []
    for folder, frames in zip(folders, _render_all(jobs, workers, _render_video, chunksize=1),
                              strict=True):
        video = folder.rpartition("/")[2]
        for k, (jpeg, points) in enumerate(frames, start=1):
            rel = f"{folder}/{video}.{k}.jpg"
            with atomic_path(base / "frame_images_DB" / rel) as tmp:
                tmp.write_bytes(jpeg)
            landmarks.append(f"frame_images_DB/{rel} {_coords(points, 2)}")
    _write_text(base / YTF_LANDMARKS, [f"image {_LANDMARK_NAMES}", *landmarks])
    return [base, _write_text(root / "splits.txt", [splits_text(layout).rstrip("\n")])]


# Fixed archive timestamps (2000-01-01) so the same config gives byte-identical archives.
_ARCHIVE_MTIME = 946684800
_ZIP_DATE = (2000, 1, 1, 0, 0, 0)
MIRROR_FILES: tuple[str, ...] = (
    "lfw.tgz", "pairs.txt", "lfw_landmarks.txt", "lfw_attributes.txt", "CASIA-WebFace.zip",
    "img_align_celeba.zip", "list_attr_celeba.txt", "list_landmarks_align_celeba.txt",
    "list_eval_partition.txt", "identity_CelebA.txt", "facescrub_images.tar.gz",
    "megaface_images.tar.gz", "YouTubeFaces.tar.gz", "splits.txt",
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
        _pack_tgz(work, "YouTubeFaces", staged["YouTubeFaces.tar.gz"])
        _pack_tgz(work, "facescrub_images", staged["facescrub_images.tar.gz"])
        _pack_tgz(work, "megaface_images", staged["megaface_images.tar.gz"])
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
