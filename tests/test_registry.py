import copy
from pathlib import Path

import pytest
import yaml

from facerepro.config import ConfigError, validate
from facerepro.data import registry
from facerepro.data.download import ManualPlacementError, digests, fetch

ROOT = Path(__file__).resolve().parents[1]
REAL_PAIRS = Path(__file__).parent / "data" / "lfw" / "pairs.txt"
REAL_KINDS = ["lfw", "celeba", "casia_webface", "ytf", "megaface", "cifar100"]


@pytest.mark.parametrize("kind", REAL_KINDS)
def test_every_real_file_has_a_source_and_an_honest_checksum(kind):
    spec = registry.SOURCES[kind]
    assert set(registry.source_files({"kind": kind})) == set(spec.files)
    assert spec.licence and spec.homepage
    for name, f in spec.files.items():
        assert f.name == name and f.note
        assert f.sha256 is None or registry.SHA256_RE.match(f.sha256)
        assert f.md5 is None or registry.MD5_RE.match(f.md5)
        assert f.url is None or f.url.startswith("https://")


def test_lfw_pins_match_design_and_the_real_pairs_file():
    files = registry.LFW.files
    tgz = files["lfw.tgz"]
    assert tgz.url == "https://ndownloader.figshare.com/files/5976018"
    assert tgz.sha256 == "055f7d9c632d7370e6fb4afc7468d40f970c34a80d4c6f50ffec63f5a8d536c0"
    assert tgz.size == 180_566_744
    pairs = files["pairs.txt"]
    assert pairs.url.endswith("/5976006")
    assert (pairs.sha256, pairs.size) == (digests(REAL_PAIRS)[0], REAL_PAIRS.stat().st_size)


def test_unconfirmed_checksums_are_none_and_say_so():
    assert registry.CIFAR100.files["cifar-100-python.tar.gz"].sha256 is None
    assert registry.CIFAR100.files["cifar-100-python.tar.gz"].md5 == (
        "eb9058c3a382ffc7106e4002c42a8d85")
    casia = registry.CASIA_WEBFACE.files["CASIA-WebFace.zip"]
    assert (casia.url, casia.sha256, casia.md5) == (None, None, None)
    assert "No checksum is published" in casia.note


def test_hand_placed_file_source_and_pins():
    cfg = {"kind": "casia_webface"}
    src = registry.file_source("casia", cfg, "CASIA-WebFace.zip")
    assert src.url is None and src.sha256 is None
    assert src.manual == "resources/manual/casia/CASIA-WebFace.zip"
    assert "datasets.casia.checksums" in src.note
    pinned = registry.file_source("casia", {**cfg, "checksums": {"CASIA-WebFace.zip": "a" * 64}},
                                  "CASIA-WebFace.zip")
    assert pinned.sha256 == "a" * 64
    with pytest.raises(ValueError, match="contradicts the published sha256"):
        registry.file_source("lfw", {"kind": "lfw", "checksums": {"lfw.tgz": "b" * 64}},
                             "lfw.tgz")
    with pytest.raises(KeyError, match="not a file of dataset"):
        registry.file_source("casia", cfg, "lfw.tgz")


def test_megaface_error_names_the_exact_file_and_destination(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = registry.file_source("mf", {"kind": "megaface"}, "megaface_images.tar.gz")
    with pytest.raises(ManualPlacementError) as err:
        fetch(src.url, tmp_path / "dl" / "megaface_images.tar.gz", src.sha256, md5=src.md5,
              manual=src.manual, note=src.note, progress=False)
    message = str(err.value)
    assert str(tmp_path / "resources/manual/mf/megaface_images.tar.gz") in message
    assert "megaface_images/" in message and "datasets.mf.checksums" in message


def test_mirrored_source_takes_hashes_from_its_sums_file(tmp_path):
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'c' * 64}  lfw.tgz\n")
    src = registry.file_source("synth", {"kind": "synthfaces"}, "lfw.tgz", sums)
    assert src.sha256 == "c" * 64 and src.url.startswith("file://")
    assert src.url.endswith("resources/mirror/synth/lfw.tgz") and src.manual is None


def test_clean_settings_defaults_and_config():
    datasets = {"synth": {"kind": "synthfaces"}, "lfw": {"kind": "lfw"}, "ytf": {"kind": "ytf"}}
    synth = registry.clean_settings("synth/casia", datasets)
    assert synth.overlap_with == ("synth/lfw",) and synth.min_images == 1
    assert registry.clean_settings("synth/lfw", datasets).overlap_with == ()
    datasets["casia"] = {"kind": "casia_webface",
                         "clean": {"overlap_with": ["lfw/lfw", "ytf/ytf"], "min_images": 3,
                                   "overlap_lists": {"megaface": ["A B"]}}}
    real = registry.clean_settings("casia/casia", datasets)
    assert real.overlap_with == ("lfw/lfw", "ytf/ytf") and real.min_images == 3
    assert real.overlap_lists == {"megaface": ["A B"]}
    datasets["casia"]["clean"]["overlap_with"] = ["lfw/funneled", "lfw/nope"]
    with pytest.raises(ValueError, match=r"\['lfw/nope'\], which are not datasets"):
        registry.clean_settings("casia/casia", datasets)
    datasets["lfw"]["clean"] = {"overlap_with": ["lfw/lfw"]}
    with pytest.raises(ValueError, match="itself"):
        registry.clean_settings("lfw/lfw", datasets)


def test_schema_accepts_the_real_sources_and_rejects_unknown_keys():
    base = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    cfg = copy.deepcopy(base)
    cfg["datasets"].update({
        "lfw": {"kind": "lfw"},
        "casia": {"kind": "casia_webface", "checksums": {"CASIA-WebFace.zip": "a" * 64},
                  "clean": {"overlap_with": ["lfw/lfw"], "min_images": 2}},
        "cifar": {"kind": "cifar100"},
    })
    out = validate(cfg)
    assert out["datasets"]["lfw"]["clean"] == {"min_side": 32, "min_images": 1,
                                               "overlap_with": [], "overlap_lists": {}}
    for bad in ({"kind": "lfw", "url": "x"}, {"kind": "ytf", "clean": {"min_imgs": 2}},
                {"kind": "celeba", "checksums": {"list_attr_celeba.txt": "ABC"}}):
        cfg = copy.deepcopy(base)
        cfg["datasets"]["bad"] = bad
        with pytest.raises(ConfigError, match="datasets.bad"):
            validate(cfg)
