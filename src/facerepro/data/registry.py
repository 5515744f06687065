"""Dataset specs: which files a source provides, where they come from, how a part is laid out.

A *source* is a config entry under ``datasets:`` (``synth: {kind: synthfaces}``, ``lfw: {kind:
lfw}``); it provides one or more *parts* (``synth/lfw``, ``synth/casia``, ``lfw/lfw``), each
with an on-disk layout that the cleaning and protocol code reads. SynthFaces writes the real
datasets' layouts, so one layout name serves the synthetic and the real data alike.

Every file carries the checksum we could confirm and where it comes from. A checksum is only
written here when a trustworthy source publishes it (scikit-learn's and torchvision's dataset
code, or a copy measured here whose hash matches a published one); otherwise it is ``None``
with a note, and the user pins the sha256 of their own copy in the config
(``datasets.<source>.checksums``) after checking it. Nothing is invented.

Files without a public download (licence by request) are placed by hand at
:func:`manual_path`; the fetch rule verifies them from there like any download.

A ``folder`` source is the user's own faces: a local directory or archive
(:mod:`facerepro.data.folder` copies it into the part's extraction folder), one part
``faces``, whose spec is built from the config entry (:func:`folder_spec`). It is never
fetched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facerepro import paths

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MD5_RE = re.compile(r"^[0-9a-f]{32}$")
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".zip")

# Layouts the cleaning code can list (facerepro.data.clean.LAYOUTS holds their image folders):
# lfw, lfw_funneled, casia, celeba, ytf, facescrub, megaface, cifar100, and a folder source's
# folder (<Name>/<file>) or folder_ids (<id>/<file>).
SPLITS = ("train", "test", "partition", "per_file")


@dataclass(frozen=True)
class FileSpec:
    """One file of a source: where it comes from and how it is checked."""

    name: str
    url: str | None = None      # None: no public download; the user places the file by hand
    sha256: str | None = None   # None: no checksum we could confirm (``note`` says why)
    md5: str | None = None      # only where a trusted list publishes md5 and no sha256
    size: int | None = None     # bytes, only where confirmed
    note: str = ""              # provenance of the checksum; what to place, where to get it


@dataclass(frozen=True)
class PartSpec:
    """One dataset part: the files it needs and how to read it once extracted."""

    name: str
    layout: str                 # see the layouts listed above
    files: tuple[str, ...]      # fetched file names; archives among them are extracted
    split: str                  # train | test | partition (CelebA's file) | per_file (CIFAR)
    # Parts of the same source whose identities are removed from this (training) part, so a
    # model never trains on a person it is evaluated on (SynthFaces: casia vs lfw).
    overlap_with: tuple[str, ...] = ()
    # The pairs file a verification protocol reads by default (LFW format, or CSV when it
    # ends in .csv: facerepro.data.protocols.read_pairs); None: the part has no pairs.
    pairs: str | None = None

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"part {self.name}: split {self.split!r} is not one of {SPLITS}")


@dataclass(frozen=True)
class SourceSpec:
    """A dataset kind: its parts, its files and the terms it comes under."""

    kind: str
    parts: dict[str, PartSpec]
    mirrored: bool = False      # served from a local file:// mirror with its own SHA256SUMS
    files: dict[str, FileSpec] = field(default_factory=dict)
    licence: str = ""
    homepage: str = ""


SYNTHFACES = SourceSpec(
    kind="synthfaces",
    mirrored=True,
    parts={
        "lfw": PartSpec("lfw", "lfw",
                        ("lfw.tgz", "pairs.txt", "lfw_landmarks.txt", "lfw_attributes.txt"),
                        split="test", pairs="pairs.txt"),
        "casia": PartSpec("casia", "casia", ("CASIA-WebFace.zip",), split="train",
                          overlap_with=("lfw",)),
        "celeba": PartSpec("celeba", "celeba",
                           ("img_align_celeba.zip", "list_attr_celeba.txt",
                            "list_landmarks_align_celeba.txt", "list_eval_partition.txt",
                            "identity_CelebA.txt"),
                           split="partition"),
        "ytf": PartSpec("ytf", "ytf", ("YouTubeFaces.tar.gz", "splits.txt"), split="test"),
        # MegaFace challenge 1's two parts, in its layouts (the MEGAFACE kind's part names).
        "facescrub": PartSpec("facescrub", "facescrub", ("facescrub_images.tar.gz",),
                              split="test"),
        "distractors": PartSpec("distractors", "megaface", ("megaface_images.tar.gz",),
                                split="test"),
    },
    licence="Generated here (facerepro.data.synth); no third-party content.",
)

_FIGSHARE = "https://ndownloader.figshare.com/files/"
_SKLEARN = ("sha256 from scikit-learn's LFW fetcher (sklearn/datasets/_lfw.py), which downloads "
            "the same figshare file")
_LFW_PAIRS = ("pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt")

LFW = SourceSpec(
    kind="lfw",
    parts={
        "lfw": PartSpec("lfw", "lfw", ("lfw.tgz", *_LFW_PAIRS), split="test",
                        pairs="pairs.txt"),
        "funneled": PartSpec("funneled", "lfw_funneled", ("lfw-funneled.tgz", *_LFW_PAIRS),
                             split="test", pairs="pairs.txt"),
    },
    files={
        "lfw.tgz": FileSpec(
            "lfw.tgz", _FIGSHARE + "5976018",
            sha256="055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0",
            size=180_566_744, note=_SKLEARN + "; size as in docs/DESIGN.md"),
        "lfw-funneled.tgz": FileSpec(
            "lfw-funneled.tgz", _FIGSHARE + "5976015",
            sha256="b47c8422c8cded889dc5a13418c4bc2abbda121092b3533a83306f90d900100a",
            note=_SKLEARN + "; size not confirmed"),
        "pairs.txt": FileSpec(
            "pairs.txt", _FIGSHARE + "5976006",
            sha256="ea42330c62c92989f9d7c03237ed5d591365e89b3e649747777b70e692dc1592",
            size=155_335,
            note=_SKLEARN + "; the same hash as tests/data/lfw/pairs.txt, whose size is given"),
        "pairsDevTrain.txt": FileSpec(
            "pairsDevTrain.txt", _FIGSHARE + "5976012",
            sha256="1d454dada7dfeca0e7eab6f65dc4e97a6312d44cf142207be28d688be92aabfa",
            note=_SKLEARN),
        "pairsDevTest.txt": FileSpec(
            "pairsDevTest.txt", _FIGSHARE + "5976009",
            sha256="7cb06600ea8b2814ac26e946201cdb304296262aad67d046a16a7ec85d0ff87c",
            note=_SKLEARN),
    },
    licence="No formal licence; research use, citing Huang et al. 2007 (UMass tech report "
            "07-49). The images are press photos collected from the web.",
    homepage="http://vis-www.cs.umass.edu/lfw/",
)

_TORCHVISION = "md5 from torchvision.datasets.CelebA (no sha256 is published)"
_CELEBA_PLACE = ("CelebA is distributed through Google Drive / Baidu links on its homepage "
                 "(interactive download); place the file by hand")

CELEBA = SourceSpec(
    kind="celeba",
    parts={"celeba": PartSpec("celeba", "celeba",
                              ("img_align_celeba.zip", "list_attr_celeba.txt",
                               "list_landmarks_align_celeba.txt", "list_eval_partition.txt",
                               "identity_CelebA.txt"),
                              split="partition")},
    files={name: FileSpec(name, md5=md5, note=f"{_TORCHVISION}. {_CELEBA_PLACE}.")
           for name, md5 in (
               ("img_align_celeba.zip", "00d2c5bc6d35e252742224ab0c1e8fcb"),
               ("list_attr_celeba.txt", "75e246fa4810816ffd6ee81facbd244c"),
               ("list_landmarks_align_celeba.txt", "cc24ecafdb5b50baae59b03474781f8c"),
               ("list_eval_partition.txt", "d32c9cbf5e040fd4025c592c306e6668"),
               ("identity_CelebA.txt", "32bd1bd63d3c78cd57e08160ec5ed1e2"))},
    licence="Non-commercial research purposes only (the CelebA agreement); the images remain "
            "their owners'.",
    homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
)

_NO_SUM = "No checksum is published; check your copy, then pin its sha256 in the config"

CASIA_WEBFACE = SourceSpec(
    kind="casia_webface",
    parts={"casia": PartSpec("casia", "casia", ("CASIA-WebFace.zip",), split="train")},
    files={"CASIA-WebFace.zip": FileSpec(
        "CASIA-WebFace.zip",
        note=f"{_NO_SUM}. Granted on request by CBSR (Institute of Automation, CAS). The zip "
             "must unpack to CASIA-WebFace/<7-digit id>/<nnn>.jpg; a CASIA-WebFace/names.txt "
             "('<id> <Name>' per line) lets cleaning remove people who are also in an "
             "evaluation set")},
    licence="Non-commercial research use under the CBSR release agreement.",
    homepage="http://www.cbsr.ia.ac.cn/english/CASIA-WebFace-Database.html",
)

YTF = SourceSpec(
    kind="ytf",
    parts={"ytf": PartSpec("ytf", "ytf", ("YouTubeFaces.tar.gz", "splits.txt"), split="test")},
    files={
        "YouTubeFaces.tar.gz": FileSpec(
            "YouTubeFaces.tar.gz",
            note=f"{_NO_SUM}. Download after the form on the homepage; it must unpack to "
                 "YouTubeFaces/frame_images_DB/<Name>/<video>/<frame>.jpg (an uncompressed "
                 "YouTubeFaces.tar may be placed under this name: extraction detects it)"),
        "splits.txt": FileSpec(
            "splits.txt",
            note=f"{_NO_SUM}. The benchmark's 5,000 video pairs in 10 splits, from the "
                 "homepage (CSV with columns 'split number, first name, second name, is same')"),
    },
    licence="Research use; register on the homepage (Wolf, Hassner, Maoz, CVPR 2011).",
    homepage="https://www.cs.tau.ac.il/~wolf/ytfaces/",
)

MEGAFACE = SourceSpec(
    kind="megaface",
    parts={
        "distractors": PartSpec("distractors", "megaface", ("megaface_images.tar.gz",),
                                split="test"),
        "facescrub": PartSpec("facescrub", "facescrub", ("facescrub_images.tar.gz",),
                              split="test"),
    },
    files={
        "megaface_images.tar.gz": FileSpec(
            "megaface_images.tar.gz",
            note=f"{_NO_SUM}. The challenge-1 distractor set (licence by request from the "
                 "University of Washington); it must unpack to megaface_images/<...>/<image>.jpg "
                 "(repack it under this name if your copy is named differently)"),
        "facescrub_images.tar.gz": FileSpec(
            "facescrub_images.tar.gz",
            note=f"{_NO_SUM}. The FaceScrub probe images of the MegaFace challenge; it must "
                 "unpack to facescrub_images/<Name>/<image>.jpg"),
    },
    licence="Research use under the MegaFace and FaceScrub agreements; MegaFace has been "
            "withdrawn by its authors, so use an existing licensed copy only.",
    homepage="http://megaface.cs.washington.edu/",
)

CIFAR100 = SourceSpec(
    kind="cifar100",
    parts={"cifar100": PartSpec("cifar100", "cifar100", ("cifar-100-python.tar.gz",),
                                split="per_file")},
    files={"cifar-100-python.tar.gz": FileSpec(
        "cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        note="md5 from torchvision.datasets.CIFAR100 (the only published checksum; no sha256 "
             "or size confirmed)")},
    licence="No formal licence; cite Krizhevsky 2009.",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
)

SOURCES: dict[str, SourceSpec] = {
    s.kind: s for s in (SYNTHFACES, LFW, CELEBA, CASIA_WEBFACE, YTF, MEGAFACE, CIFAR100)}

FOLDER = "folder"
FOLDER_PART = "faces"
# A folder source's optional files: config key -> the name of its copy in the part's
# extraction folder, where the protocols and the landmark reader look for it.
FOLDER_FILES = {"pairs": "pairs.txt", "landmarks": "landmarks.txt",
                "attributes": "attributes.txt"}
FOLDER_LAYOUT = {"lfw": "folder", "casia": "folder_ids"}     # config `layout` -> layout


def folder_files(source_config: dict) -> dict[str, str]:
    """{name in the extraction folder: configured path} of a folder source's optional files
    (a CSV pairs file keeps its ``.csv``, which selects its reader)."""
    files = {}
    for key, name in FOLDER_FILES.items():
        given = source_config.get(key)
        if given:
            csv = key == "pairs" and given.lower().endswith(".csv")
            files["pairs.csv" if csv else name] = given
    return files


def folder_spec(source_config: dict) -> SourceSpec:
    """The spec of a ``kind: folder`` entry: one part, ``faces``, laid out as configured."""
    files = tuple(folder_files(source_config))
    pairs = next((f for f in files if f.startswith("pairs.")), None)
    part = PartSpec(FOLDER_PART, FOLDER_LAYOUT[source_config["layout"]], files,
                    split=source_config["split"], pairs=pairs)
    return SourceSpec(kind=FOLDER, parts={FOLDER_PART: part})


def source_spec(source_config: dict) -> SourceSpec:
    """The spec of a ``datasets:`` entry's kind."""
    kind = source_config["kind"]
    if kind == FOLDER:
        return folder_spec(source_config)
    if kind not in SOURCES:
        raise KeyError(f"unknown dataset kind {kind!r}; known: {sorted(SOURCES)} and {FOLDER}")
    return SOURCES[kind]


def parts_of(source_config: dict) -> list[str]:
    """The part names a source provides (``lfw``, ``casia``, ...)."""
    return list(source_spec(source_config).parts)


def part_spec(source_config: dict, part: str) -> PartSpec:
    """One part of a source; a clear error names the parts it has."""
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
    """Whether extraction unpacks ``name`` (otherwise it is copied as is)."""
    return name.endswith(ARCHIVE_SUFFIXES)


def read_sha256sums(path: str | Path) -> dict[str, str]:
    """Parse a ``sha256sum``-format file into {file name: hex digest}."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    return sums


def manual_path(source: str, name: str) -> str:
    """Where the user places a file by hand (licence by request, or no network)."""
    return f"{paths.RESOURCES}/manual/{source}/{name}"


@dataclass(frozen=True)
class FileSource:
    """Everything the fetch step needs for one file of one configured source."""

    url: str | None
    sha256: str | None
    md5: str | None
    size: int | None
    manual: str | None          # hand-placement path; None for a generated mirror
    note: str


def file_source(source: str, source_config: dict, name: str,
                sums: str | Path | None = None) -> FileSource:
    """Where file ``name`` of source ``source`` comes from and how it is verified.

    A mirrored source's ``sums`` file gives the sha256. For the real datasets the registry
    gives url and checksums, and ``datasets.<source>.checksums`` may pin a sha256 where the
    registry has none (a pin that contradicts a published sha256 is an error).
    """
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
        return FileSource(url, expected[name], None, None, None, "generated SynthFaces mirror")
    file = spec.files[name]
    check_pins(source, source_config)
    pinned = source_config.get("checksums", {}).get(name)
    note = f"{file.note}."
    if not (file.sha256 or file.md5 or pinned):
        note += f" To pin: datasets.{source}.checksums: {{{name}: <sha256>}}."
    if spec.licence:
        note += f" Licence: {spec.licence}"
    return FileSource(file.url, file.sha256 or pinned, file.md5, file.size,
                      manual_path(source, name), note)


def check_pins(source: str, source_config: dict) -> None:
    """Refuse ``datasets.<source>.checksums`` pins that name no file of the source, are not a
    sha256, or contradict the sha256 the registry publishes; each error names the fix."""
    pins = source_config.get("checksums", {})
    if not pins:
        return
    spec = source_spec(source_config)
    if spec.mirrored or spec.kind == FOLDER:
        raise ValueError(f"datasets.{source}.checksums: a {spec.kind} source is checked by "
                         f"its own sha256 list, not by pins; remove datasets.{source}.checksums")
    names = source_files(source_config)
    for name, pinned in pins.items():
        if name not in names:
            raise ValueError(f"datasets.{source}.checksums names {name!r}, which is not a file "
                             f"of dataset kind {spec.kind!r} (its files: {names}); remove or "
                             f"rename the pin")
        if not SHA256_RE.match(str(pinned)):
            raise ValueError(f"datasets.{source}.checksums.{name} = {pinned!r} is not a "
                             f"lower-case hex sha256 (64 characters)")
        published = spec.files[name].sha256
        if published and pinned != published:
            raise ValueError(f"datasets.{source}.checksums.{name} = {pinned} contradicts the "
                             f"published sha256 {published} ({spec.files[name].note}); remove "
                             f"the pin. A file of your own is a folder source (kind: folder), "
                             f"not a copy of {spec.kind}")


@dataclass(frozen=True)
class CleanSettings:
    """How one part is cleaned: see :func:`facerepro.data.clean.build_manifest`."""

    min_side: int = 32
    min_images: int = 1
    overlap_with: tuple[str, ...] = ()          # evaluation datasets (source/part)
    overlap_lists: dict[str, Any] = field(default_factory=dict)   # label: names or file


def clean_settings(dataset: str, datasets: dict) -> CleanSettings:
    """The cleaning settings of ``dataset`` (``source/part``) given the config's ``datasets``:
    the registry's defaults, then ``datasets.<source>.clean``.

    SynthFaces (whose config keys are the generator's own) takes the defaults: its training
    part drops the people of its own LFW part. A real training source names the evaluation
    datasets itself (``clean: {overlap_with: [lfw/lfw]}``): they are other sources, and must be
    datasets of the same config.
    """
    source, part = dataset.split("/")
    source_config = datasets[source]
    spec = part_spec(source_config, part)
    own = tuple(f"{source}/{p}" for p in spec.overlap_with)
    options = source_config.get("clean", {})
    overlap = tuple(dict.fromkeys(own + tuple(options.get("overlap_with", ()))))
    known = [f"{s}/{p}" for s, cfg in datasets.items() for p in parts_of(cfg)]
    unknown = sorted(set(overlap) - set(known))
    if unknown:
        raise ValueError(f"datasets.{source}.clean.overlap_with names {unknown}, which are not "
                         f"datasets of this config; known: {known}")
    if dataset in overlap:
        raise ValueError(f"datasets.{source}.clean.overlap_with names {dataset} itself: every "
                         f"one of its identities would be removed")
    return CleanSettings(
        min_side=options.get("min_side", 32),
        min_images=options.get("min_images", 1),
        overlap_with=overlap,
        overlap_lists=dict(options.get("overlap_lists", {})),
    )
