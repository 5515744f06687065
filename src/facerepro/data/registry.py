"""Dataset specs: which files a source provides, where they come from, how a part is laid out.

A *source* is a config entry under ``datasets:`` (``synth: {kind: synthfaces}``); it provides
one or more *parts* (``synth/lfw``, ``synth/casia``, ``synth/celeba``), each with an on-disk
layout that the cleaning and protocol code reads. SynthFaces writes the real datasets' layouts,
so one layout name serves the synthetic and the real data alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facerepro import paths


@dataclass(frozen=True)
class PartSpec:
    """One dataset part: the files it needs and how to read it once extracted."""

    name: str
    layout: str                 # lfw | casia | celeba
    files: tuple[str, ...]      # fetched file names; archives among them are extracted
    split: str                  # default split of every image: train | test (celeba: per file)


@dataclass(frozen=True)
class SourceSpec:
    kind: str
    parts: dict[str, PartSpec]
    mirrored: bool              # served from a local file:// mirror with its own SHA256SUMS


ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".zip")

SYNTHFACES = SourceSpec(
    kind="synthfaces",
    mirrored=True,
    parts={
        "lfw": PartSpec("lfw", "lfw",
                        ("lfw.tgz", "pairs.txt", "lfw_landmarks.txt", "lfw_attributes.txt"),
                        split="test"),
        "casia": PartSpec("casia", "casia", ("CASIA-WebFace.zip",), split="train"),
        "celeba": PartSpec("celeba", "celeba",
                           ("img_align_celeba.zip", "list_attr_celeba.txt",
                            "list_landmarks_align_celeba.txt", "list_eval_partition.txt",
                            "identity_CelebA.txt"),
                           split="partition"),
    },
)

SOURCES: dict[str, SourceSpec] = {SYNTHFACES.kind: SYNTHFACES}


def source_spec(source_config: dict) -> SourceSpec:
    kind = source_config["kind"]
    if kind not in SOURCES:
        raise KeyError(f"unknown dataset kind {kind!r}; known: {sorted(SOURCES)}")
    return SOURCES[kind]


def parts_of(source_config: dict) -> list[str]:
    return list(source_spec(source_config).parts)


def part_spec(source_config: dict, part: str) -> PartSpec:
    parts = source_spec(source_config).parts
    if part not in parts:
        raise KeyError(f"dataset kind {source_config['kind']!r} has no part {part!r}; "
                       f"it has {sorted(parts)}")
    return parts[part]


def source_files(source_config: dict) -> list[str]:
    """Every file name the source's parts need, each once."""
    names = (f for p in source_spec(source_config).parts.values() for f in p.files)
    return list(dict.fromkeys(names))


def is_archive(name: str) -> bool:
    return name.endswith(ARCHIVE_SUFFIXES)


def read_sha256sums(path: str | Path) -> dict[str, str]:
    """Parse a ``sha256sum``-format file into {file name: hex digest}."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def file_source(source: str, source_config: dict, name: str,
                sums: str | Path | None = None) -> tuple[str, str]:
    """(url, sha256) of one file of a source; a mirrored source's sums file gives the hash."""
    spec = source_spec(source_config)
    if name not in source_files(source_config):
        raise KeyError(f"{name!r} is not a file of dataset {source!r} ({spec.kind})")
    if spec.mirrored:
        if sums is None:
            raise ValueError(f"{source}: a mirrored source needs its SHA256SUMS file")
        url = Path(paths.mirror_file(source, name)).resolve().as_uri()
        expected = read_sha256sums(sums)
        if name not in expected:
            raise KeyError(f"{sums} lists no checksum for {name}; delete the mirror and re-run")
        return url, expected[name]
    raise NotImplementedError(f"dataset kind {spec.kind!r} has no download source yet")
