import io
import json
import pickle
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facerepro.align.images import read_rgb
from facerepro.data.clean import (
    build_manifest,
    identity_names,
    list_images,
    normalise_name,
    overlap_names,
)
from facerepro.data.extract import UnsafeArchiveError, extract


def _pixels(seed, size=64):
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), np.uint8)


def _encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def _jpeg(seed, size=64):
    return _encode(Image.fromarray(_pixels(seed, size)))


def _tar(path, members):
    """members: {name: bytes} or {name: TarInfo already typed (links, devices)}."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            if isinstance(data, tarfile.TarInfo):
                tf.addfile(data)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _special(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def _write_tree(root, files):
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


# ---------------------------------------------------------------------------------------------
# Extraction


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
    _tar(archive, {"lfw/B/B_0001.jpg": _jpeg(1)})
    extract([archive], [], target, marker)        # another archive: extracted afresh
    assert (target / "lfw/B/B_0001.jpg").exists() and not (target / "lfw/A").exists()


OUTSIDE, POINT_DOWN, DEVICE = "reach outside", "only links down", "device node or FIFO"
BAD_TAR_MEMBERS = {   # case: (members, what the refusal says)
    "absolute": ({"/tmp/evil": b"x"}, OUTSIDE),
    "dotdot": ({"../evil": b"x"}, OUTSIDE),
    "nested_dotdot": ({"lfw/../../evil": b"x"}, OUTSIDE),
    "symlink_absolute": ({"lfw/l": _special("lfw/l", tarfile.SYMTYPE, "/etc/passwd")},
                         POINT_DOWN),
    "symlink_escaping": ({"lfw/l": _special("lfw/l", tarfile.SYMTYPE, "../../evil")},
                         POINT_DOWN),
    # both stay inside by a lexical check; together c resolves to the target's parent
    "symlink_chain": ({"lfw/b": _special("lfw/b", tarfile.SYMTYPE, ".."),
                       "lfw/c": _special("lfw/c", tarfile.SYMTYPE, "b/..")}, POINT_DOWN),
    "hardlink_escaping": ({"lfw/h": _special("lfw/h", tarfile.LNKTYPE, "../../etc/passwd")},
                          OUTSIDE),
    "hardlink_to_non_member": ({"lfw/h": _special("lfw/h", tarfile.LNKTYPE, "etc/passwd")},
                               "earlier file"),
    "char_device": ({"lfw/null": _special("lfw/null", tarfile.CHRTYPE)}, DEVICE),
    "block_device": ({"lfw/sda": _special("lfw/sda", tarfile.BLKTYPE)}, DEVICE),
    "fifo": ({"lfw/pipe": _special("lfw/pipe", tarfile.FIFOTYPE)}, DEVICE),
}


@pytest.mark.parametrize("case", sorted(BAD_TAR_MEMBERS))
def test_extract_refuses_malicious_tar_and_writes_nothing(tmp_path, case):
    members, says = BAD_TAR_MEMBERS[case]
    work = tmp_path / "work"
    target = work / "out"
    _write_tree(target, {"old.txt": b"previous extraction"})
    archive = tmp_path / "bad.tgz"
    # a good member first: refusal must come before anything is written
    _tar(archive, {"lfw/A/A_0001.jpg": _jpeg(0), **members})
    with pytest.raises(UnsafeArchiveError, match=says):
        extract([archive], [], target, target / ".m")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "bad.tgz", "work", "work/out", "work/out/old.txt"]


def test_extract_keeps_symlinks_that_point_down_inside_the_target(tmp_path):
    archive = tmp_path / "ok.tgz"
    _tar(archive, {"lfw/A/A_0001.jpg": _jpeg(0),
                   "lfw/A/latest.jpg": _special("lfw/A/latest.jpg", tarfile.SYMTYPE,
                                                "A_0001.jpg"),
                   "lfw/B_0001.jpg": _special("lfw/B_0001.jpg", tarfile.LNKTYPE,
                                              "lfw/A/A_0001.jpg")})
    target = tmp_path / "out"
    extract([archive], [], target, target / ".m")
    link = target / "lfw/A/latest.jpg"
    assert link.is_symlink() and link.resolve() == (target / "lfw/A/A_0001.jpg").resolve()
    assert (target / "lfw/B_0001.jpg").read_bytes() == _jpeg(0)


@pytest.mark.parametrize("name", ["../evil.jpg", "/tmp/evil.jpg", "a/../../evil.jpg"])
def test_extract_refuses_zip_traversal(tmp_path, name):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("CASIA-WebFace/0000001/001.jpg", _jpeg(0))
        zf.writestr(name, b"x")
    with pytest.raises(UnsafeArchiveError, match="reach outside"):
        extract([archive], [], tmp_path / "out", tmp_path / "out" / ".m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip"]


def test_extract_refuses_zip_symlinks(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("CASIA-WebFace/link")
        info.create_system, info.external_attr = 3, (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symlink"):
        extract([archive], [], tmp_path / "out", tmp_path / "out" / ".m")


# ---------------------------------------------------------------------------------------------
# Cleaning


def test_bad_images_are_quarantined_or_converted_and_counts_balance(tmp_path):
    root = tmp_path / "part"
    full = _jpeg(1)
    rgb = _pixels(5)
    files = {
        "lfw/A/A_0001.jpg": full,
        "lfw/A/A_0002.jpg": full,                                    # duplicate of A_0001
        "lfw/A/A_0003.jpg": full[: len(full) // 2],                  # truncated JPEG
        "lfw/B/B_0001.jpg": b"",                                     # zero bytes
        "lfw/B/B_0002.jpg": b"this is a text file, not a JPEG\n",    # not an image
        "lfw/B/B_0003.jpg": _jpeg(3, size=8),                        # too small
        "lfw/C/C_0001.jpg": _encode(Image.fromarray(rgb[..., 0])),   # grayscale
        "lfw/C/C_0002.jpg": _encode(Image.fromarray(rgb).convert("CMYK")),
        "lfw/C/C_0003.png": _encode(Image.fromarray(np.dstack([rgb, rgb[..., :1]])), "PNG"),
        "lfw/C/C_0004.jpg": _jpeg(4),
    }
    _write_tree(root, files)
    (root / "lfw/notes.txt").write_text("not an image file: not listed")
    # a training part: its byte-duplicates are quarantined (an evaluation part only marks them,
    # tests/test_folder.py)
    m = build_manifest(root, "lfw", "train").set_index("image_id")
    assert len(m) == len(files)
    assert (m["status"] == "kept").sum() + (m["status"] == "quarantined").sum() == len(files)
    assert m.loc["lfw/A/A_0002", "duplicate_of"] == "lfw/A/A_0001"
    reasons = m["reason"].to_dict()
    assert reasons == {
        "lfw/A/A_0001": "", "lfw/A/A_0002": "duplicate_of:lfw/A/A_0001",
        "lfw/A/A_0003": "truncated", "lfw/B/B_0001": "zero_bytes",
        "lfw/B/B_0002": "not_an_image", "lfw/B/B_0003": "too_small",
        "lfw/C/C_0001": "", "lfw/C/C_0002": "", "lfw/C/C_0003": "", "lfw/C/C_0004": ""}
    assert (m.loc[m["reason"] != "", "status"] == "quarantined").all()
    assert m["converted"].to_dict() == {
        "lfw/A/A_0001": "", "lfw/A/A_0002": "", "lfw/A/A_0003": "", "lfw/B/B_0001": "",
        "lfw/B/B_0002": "", "lfw/B/B_0003": "", "lfw/C/C_0001": "L->RGB",
        "lfw/C/C_0002": "CMYK->RGB", "lfw/C/C_0003": "RGBA->RGB", "lfw/C/C_0004": ""}
    assert m.loc["lfw/C/C_0004", ["height", "width", "identity"]].tolist() == [64, 64, "C"]
    # the aligner's reader turns every kept colour mode into 8-bit RGB
    for image_id in ("lfw/C/C_0001", "lfw/C/C_0002", "lfw/C/C_0003"):
        image = read_rgb(root / m.loc[image_id, "path"])
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    cmyk = read_rgb(root / "lfw/C/C_0002.jpg").astype(int)
    assert np.abs(cmyk - rgb).mean() < 12          # JPEG loss only, not inverted channels
    gray = read_rgb(root / "lfw/C/C_0001.jpg")
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def _casia(root, people):
    """people: [(folder, name, images)]; writes CASIA-WebFace/ with names.txt."""
    seed = 100
    for folder, _, count in people:
        for k in range(count):
            seed += 1
            _write_tree(root, {f"CASIA-WebFace/{folder}/{k + 1:03d}.jpg": _jpeg(seed)})
    (root / "CASIA-WebFace/names.txt").write_text(
        "".join(f"{folder} {name}\n" for folder, name, _ in people), encoding="utf-8")


def test_names_are_normalised_for_matching():
    assert normalise_name("José_Ángel  MARÍA") == "jose angel maria"
    assert normalise_name("Jean-Pierre Raffarin") == normalise_name("jean_pierre_raffarin")
    assert normalise_name("Aaron_Eckhart") != normalise_name("Aaron_Eckhardt")


def test_training_people_in_evaluation_sets_are_removed(tmp_path):
    train, lfw = tmp_path / "casia", tmp_path / "lfw"
    _casia(train, [("0000001", "José María Aznar", 3), ("0000002", "aaron eckhart", 2),
                   ("0000003", "Synth Nobody", 2), ("0000004", "Only In Megaface", 2)])
    _write_tree(lfw, {"lfw/Jose_Maria_Aznar/Jose_Maria_Aznar_0001.jpg": _jpeg(1),
                      "lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg": _jpeg(2)})
    (tmp_path / "extra.txt").write_text("# people of another evaluation set\nONLY_IN_MEGAFACE\n")
    exclude = overlap_names({"lfw/lfw": (lfw, "lfw")}, {"megaface": str(tmp_path / "extra.txt")})
    assert exclude["lfw/lfw"] == ["Aaron_Eckhart", "Jose_Maria_Aznar"]
    m = build_manifest(train, "casia", "train", exclude=exclude)
    by_person = m.groupby("identity")["reason"].agg(set).to_dict()
    assert by_person == {"0000001": {"overlaps_eval:lfw/lfw"},
                         "0000002": {"overlaps_eval:lfw/lfw"},
                         "0000003": {""}, "0000004": {"overlaps_eval:megaface"}}
    assert len(m) == 9 and (m["status"] == "kept").sum() == 2
    # an explicit list may give CASIA folder ids instead of names
    by_id = build_manifest(train, "casia", "train", exclude={"manual": ["0000003"]})
    assert set(by_id.loc[by_id["status"] == "quarantined", "identity"]) == {"0000003"}


def test_overlap_by_name_needs_casia_names(tmp_path):
    _casia(tmp_path, [("0000001", "A B", 1)])
    (tmp_path / "CASIA-WebFace/names.txt").unlink()
    with pytest.raises(FileNotFoundError, match="names.txt is missing"):
        identity_names(tmp_path, "casia")
    with pytest.raises(ValueError, match="by number"):
        identity_names(tmp_path, "celeba")


def test_people_with_too_few_kept_images_are_quarantined(tmp_path):
    _casia(tmp_path, [("0000001", "A", 3), ("0000002", "B", 2), ("0000003", "C", 1)])
    # a duplicate does not count towards B's images
    dup = (tmp_path / "CASIA-WebFace/0000002/001.jpg").read_bytes()
    (tmp_path / "CASIA-WebFace/0000002/002.jpg").write_bytes(dup)
    m = build_manifest(tmp_path, "casia", "train", min_images=2)
    by_person = m.groupby("identity")["reason"].agg(lambda r: sorted(set(r))).to_dict()
    assert by_person == {"0000001": [""],
                         "0000002": ["duplicate_of:CASIA-WebFace/0000002/001", "too_few_images"],
                         "0000003": ["too_few_images"]}
    assert (m["status"] == "kept").sum() == 3


def test_funneled_lfw_shares_the_lfw_image_ids(tmp_path):
    _write_tree(tmp_path, {"lfw_funneled/A_B/A_B_0001.jpg": _jpeg(0)})
    rows = list_images(tmp_path, "lfw_funneled", "test")
    assert rows.iloc[0].to_dict() == {"image_id": "lfw/A_B/A_B_0001", "identity": "A_B",
                                      "split": "test", "path": "lfw_funneled/A_B/A_B_0001.jpg"}


def test_ytf_frames_belong_to_the_person_folder(tmp_path):
    _write_tree(tmp_path, {"YouTubeFaces/frame_images_DB/A_B/0/0.555.jpg": _jpeg(0),
                           "YouTubeFaces/frame_images_DB/A_B/1/1.12.jpg": _jpeg(1)})
    rows = list_images(tmp_path, "ytf", "test")
    assert rows["identity"].tolist() == ["A_B", "A_B"]
    assert rows["image_id"].tolist() == ["YouTubeFaces/frame_images_DB/A_B/0/0.555",
                                         "YouTubeFaces/frame_images_DB/A_B/1/1.12"]


def _cifar_pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def test_cifar100_rows_come_from_the_pickles(tmp_path):
    base = tmp_path / "cifar-100-python"
    _cifar_pickle(base / "meta", {b"fine_label_names": [b"apple", b"bear"]})
    train = np.random.default_rng(0).integers(0, 256, (3, 3072), dtype=np.uint8)
    train[2] = train[0]                              # an exact duplicate image
    _cifar_pickle(base / "train", {b"data": train, b"fine_labels": [0, 1, 0]})
    _cifar_pickle(base / "test", {b"data": train[:1] + 1, b"fine_labels": [1]})
    m = build_manifest(tmp_path, "cifar100", "per_file")
    assert m["split"].tolist() == ["train", "train", "train", "test"]
    assert m["identity"].tolist() == ["apple", "bear", "apple", "bear"]
    assert m["reason"].tolist() == ["", "", "duplicate_of:cifar-100-python/train/00000", ""]
    _cifar_pickle(base / "meta", {b"fine_label_names": pd.DataFrame()})   # not plain arrays
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        build_manifest(tmp_path, "cifar100", "per_file")


def test_manifest_of_an_extracted_synth_style_archive(tmp_path):
    archive = tmp_path / "lfw.tgz"
    _tar(archive, {f"lfw/P_{i}/P_{i}_0001.jpg": _jpeg(i) for i in range(3)})
    target = tmp_path / "raw"
    extract([archive], [], target, target / ".extracted.json")
    m = build_manifest(target, "lfw", "test")
    assert m["image_id"].tolist() == [f"lfw/P_{i}/P_{i}_0001" for i in range(3)]
    assert (m["status"] == "kept").all() and (m["split"] == "test").all()


def test_parallel_inspection_matches_serial(tmp_path):
    _write_tree(tmp_path, {f"lfw/P_{i % 7}/P_{i % 7}_{i:04d}.jpg":
                           (_jpeg(i, 40) if i % 50 else b"") for i in range(300)})
    serial = build_manifest(tmp_path, "lfw", "test")
    # The pool forks: done in a fresh interpreter, since forking this one (OpenCV and torch
    # thread pools already started by other tests) can deadlock the children.
    script = ("import sys; from facerepro.data.clean import build_manifest; "
              "build_manifest(sys.argv[1], 'lfw', 'test', workers=2).to_pickle(sys.argv[2])")
    subprocess.run([sys.executable, "-c", script, str(tmp_path), str(tmp_path / "m.pkl")],
                   check=True, timeout=120)
    pd.testing.assert_frame_equal(serial, pd.read_pickle(tmp_path / "m.pkl"))
    assert (serial["reason"] == "zero_bytes").sum() == 6
