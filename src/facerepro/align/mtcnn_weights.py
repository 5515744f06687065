"""MTCNN's weights: the standard P-, R- and O-Net state dicts shipped in the facenet-pytorch wheel.

The wheel is fetched with ``pip download --no-deps`` and only unpacked, never installed: its
three ``facenet_pytorch/data/{pnet,rnet,onet}.pt`` members are copied out. Every byte is checked
against the sha256 pinned here (the wheel's is PyPI's published digest, as in docs/DESIGN.md; the
members' were measured from that wheel and match docs/DESIGN.md's prefixes), each file is written
atomically, and loading checks the hash again, so a truncated or foreign file is an error
rather than a silently different detector. The state dicts were converted by facenet-pytorch
from the authors' Caffe models (Zhang et al. 2016) and hold plain tensors, so they load with
``torch.load(weights_only=True)`` (in :mod:`facerepro.align.mtcnn`: the workflow reads
:data:`NETS` when it parses its rules, so this module does not import torch).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from facerepro.atomic import atomic_path

REQUIREMENT = "facenet-pytorch==2.6.0"
WHEEL = "facenet_pytorch-2.6.0-py3-none-any.whl"
WHEEL_SHA256 = "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca"
SHA256 = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}
NETS = tuple(SHA256)


class WeightsError(RuntimeError):
    """The weights are missing, corrupt, or could not be fetched; the message says what to do."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def weight_file(directory: str | Path, net: str) -> Path:
    return Path(directory) / f"{net}.pt"


def verified(directory: str | Path) -> bool:
    """Whether all three files are present with their pinned hashes."""
    files = [weight_file(directory, net) for net in NETS]
    return all(f.is_file() and _sha256(f.read_bytes()) == SHA256[f.stem] for f in files)


def fetch(directory: str | Path) -> None:
    """Download the wheel with pip, verify it, and write its three weight files to
    ``directory``; needs PyPI (or the pip index configured for this interpreter)."""
    with tempfile.TemporaryDirectory(prefix="mtcnn_wheel_") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--dest", tmp, REQUIREMENT]
        done = subprocess.run(command, capture_output=True, text=True)
        wheel = Path(tmp) / WHEEL
        if done.returncode != 0 or not wheel.is_file():
            raise WeightsError(
                f"`{' '.join(command[2:])}` failed (no network or no PyPI?):\n"
                f"{done.stderr[-1500:]}\nDownload {WHEEL} (sha256 {WHEEL_SHA256}) by hand and "
                f"unpack facenet_pytorch/data/{{pnet,rnet,onet}}.pt into {directory}/")
        digest = _sha256(wheel.read_bytes())
        if digest != WHEEL_SHA256:
            raise WeightsError(f"{WHEEL} from pip has sha256 {digest}, expected {WHEEL_SHA256}; "
                               f"check the pip index this interpreter uses")
        with zipfile.ZipFile(wheel) as zf:
            members = {net: zf.read(f"facenet_pytorch/data/{net}.pt") for net in NETS}
    for net, data in members.items():
        if _sha256(data) != SHA256[net]:
            raise WeightsError(f"{net}.pt inside {WHEEL} has sha256 {_sha256(data)}, expected "
                               f"{SHA256[net]}")
        with atomic_path(weight_file(directory, net)) as tmp_file:
            tmp_file.write_bytes(data)


def ensure(directory: str | Path) -> Path:
    """``directory`` holding verified weights, fetched first if they are not there yet."""
    if not verified(directory):
        fetch(directory)
    return Path(directory)


def checked_file(directory: str | Path, net: str) -> Path:
    """One net's weight file, after checking its hash."""
    path = weight_file(directory, net)
    if not path.is_file():
        raise WeightsError(f"{path} is missing; run the mtcnn_weights rule (`snakemake "
                           f"{path}`) or call facerepro.align.mtcnn_weights.ensure")
    data = path.read_bytes()
    if _sha256(data) != SHA256[net]:
        raise WeightsError(f"{path} has sha256 {_sha256(data)}, expected {SHA256[net]}; delete "
                           f"it and re-run the mtcnn_weights rule")
    return path
