import io
import json
import tarfile
import zipfile

import cv2
import numpy as np
import pytest

from facerepro.data.clean import build_manifest
from facerepro.data.extract import UnsafeArchiveError, extract


def _jpeg(seed, size=64):
    img = np.random.default_rng(seed).integers(0, 255, (size, size, 3), np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def test_extract_is_idempotent_and_writes_marker(tmp_path):
    archive = tmp_path / "a.tgz"
    _tar(archive, {"lfw/A/A_0001.jpg": _jpeg(0)})
    target, marker = tmp_path / "out", tmp_path / "out" / ".extracted.json"
    record = extract([archive], [], target, marker)
    assert (target / "lfw/A/A_0001.jpg").exists()
    assert json.loads(marker.read_text()) == record
    stamp = marker.stat().st_mtime_ns
    extract([archive], [], target, marker)
    assert marker.stat().st_mtime_ns == stamp     # same archive hash: nothing redone


@pytest.mark.parametrize("name", ["/etc/evil", "../evil", "lfw/../../evil"])
def test_extract_refuses_members_outside_target(tmp_path, name):
    archive = tmp_path / "bad.tgz"
    _tar(archive, {name: b"x"})
    with pytest.raises(UnsafeArchiveError, match="outside"):
        extract([archive], [], tmp_path / "out", tmp_path / "out" / ".m")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil").exists()


def test_extract_refuses_links(tmp_path):
    archive = tmp_path / "link.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("lfw/link")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract([archive], [], tmp_path / "out", tmp_path / "out" / ".m")


def test_extract_refuses_zip_traversal(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.jpg", b"x")
    with pytest.raises(UnsafeArchiveError):
        extract([archive], [], tmp_path / "out", tmp_path / "out" / ".m")


def test_manifest_accounts_for_every_file(tmp_path):
    root = tmp_path / "part"
    files = {
        "lfw/A/A_0001.jpg": _jpeg(1),
        "lfw/A/A_0002.jpg": _jpeg(1),          # exact duplicate of A_0001
        "lfw/B/B_0001.jpg": _jpeg(2),
        "lfw/B/B_0002.jpg": b"",               # zero bytes
        "lfw/C/C_0001.jpg": b"not a jpeg",     # undecodable
        "lfw/C/C_0002.jpg": _jpeg(3, size=8),  # too small
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    m = build_manifest(root, "lfw", "test").set_index("image_id")
    assert len(m) == len(files)
    assert (m["status"] == "kept").sum() + (m["status"] == "quarantined").sum() == len(files)
    assert m.loc["lfw/A/A_0001", "status"] == "kept"
    assert m.loc["lfw/A/A_0002", "reason"] == "duplicate_of:lfw/A/A_0001"
    assert m.loc["lfw/B/B_0002", "reason"] == "zero_bytes"
    assert m.loc["lfw/C/C_0001", "reason"] == "undecodable"
    assert m.loc["lfw/C/C_0002", "reason"] == "too_small"
    assert m.loc["lfw/B/B_0001", ["height", "width", "identity"]].tolist() == [64, 64, "B"]
