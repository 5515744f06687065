"""SynthFaces: determinism, exact landmarks, the real datasets' file formats, attribute rates."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from facerepro.data import synth

TINY = {
    "seed": 3,
    "casia": {"identities": 4, "mean_images": 3.0, "min_images": 2, "max_images": 5},
    "lfw": {"identities": 40, "folds": 2, "pairs_per_fold": 4},
    "celeba": {"identities": 4, "images": 12},
    "ytf": {"identities": 4, "folds": 2, "pairs_per_fold": 1, "frames": 2},
    "facescrub": {"identities": 2, "images_per_identity": 2},
    "distractors": {"identities": 3, "images": 5},
}
# Pose only: no light, blur, noise, clutter or occluders, so drawn colours are exact.
POSE_ONLY = synth.Nuisance(light_gradient=0, light_gain=0, contrast=0, color_cast=0, clutter=0,
                           blur_sigma=0, noise_sigma=0, hand_prob=0, block_prob=0)


def tiny(**changes: object) -> synth.SynthConfig:
    return synth.SynthConfig.from_dict({**TINY, **changes})


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    out = tmp_path_factory.mktemp("mirror")
    # In a fresh interpreter, as a workflow job is: workers forked from this test process would
    # inherit the thread pools that earlier tests started (OpenCV, torch) and can hang.
    code = ("import json, sys; from pathlib import Path; from facerepro.data import synth; "
            "cfg = synth.SynthConfig.from_dict(json.loads(sys.argv[2])); "
            "print(json.dumps(synth.write_mirror(Path(sys.argv[1]), cfg, workers=2)))")
    done = subprocess.run([sys.executable, "-c", code, str(out), json.dumps(TINY)],
                          capture_output=True, text=True, timeout=300, check=True)
    return out, json.loads(done.stdout)


def test_mirror_is_byte_identical_for_a_seed_whatever_the_worker_count(
        mirror: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    out, sums = mirror
    again = synth.write_mirror(tmp_path / "again", tiny(), workers=1)
    assert again == sums
    for name in ("lfw.tgz", "pairs.txt", "img_align_celeba.zip"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()
    other = synth.write_mirror(tmp_path / "other", tiny(seed=4))
    assert all(other[name] != sums[name] for name in
               ("lfw.tgz", "CASIA-WebFace.zip", "img_align_celeba.zip", "pairs.txt",
                "YouTubeFaces.tar.gz"))


def test_sha256sums_lists_every_file_with_its_hash(mirror: tuple[Path, dict[str, str]]) -> None:
    out, sums = mirror
    lines = (out / "SHA256SUMS").read_text().splitlines()
    listed = dict(reversed(line.split("  ")) for line in lines)
    assert listed == sums
    assert sorted(listed) == sorted(synth.MIRROR_FILES)
    for name, digest in listed.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temp files left behind"


def test_archives_hold_the_real_layouts(mirror: tuple[Path, dict[str, str]]) -> None:
    out, _ = mirror
    with tarfile.open(out / "lfw.tgz") as tar:
        members = tar.getmembers()
    assert {m.name.split("/")[0] for m in members} == {"lfw"}
    assert {m.mtime for m in members} == {synth._ARCHIVE_MTIME}
    jpgs = [m.name for m in members if m.isfile()]
    assert jpgs and all(
        n.split("/")[2] == f"{n.split('/')[1]}_{n[-8:-4]}.jpg" for n in jpgs)
    with zipfile.ZipFile(out / "CASIA-WebFace.zip") as zf:
        names = zf.namelist()
    assert {"CASIA-WebFace/names.txt", "CASIA-WebFace/casia_landmarks.txt",
            "CASIA-WebFace/0000001/001.jpg"} <= set(names)
    with zipfile.ZipFile(out / "img_align_celeba.zip") as zf:
        image = cv2.imdecode(np.frombuffer(zf.read("img_align_celeba/000001.jpg"), np.uint8),
                             cv2.IMREAD_COLOR)
    assert image.shape == (218, 178, 3)
    with tarfile.open(out / "YouTubeFaces.tar.gz") as tar:
        names = tar.getnames()
    assert "YouTubeFaces/ytf_landmarks.txt" in names
    assert "YouTubeFaces/frame_images_DB/Synth_Ytf_0001/0/0.2.jpg" in names


def test_megaface_archives_read_as_the_real_layouts(mirror: tuple[Path, dict[str, str]],
                                                    tmp_path: Path) -> None:
    from facerepro.align.landmarks import dataset_landmarks
    from facerepro.data.clean import list_images

    out, _ = mirror
    for archive in ("facescrub_images.tar.gz", "megaface_images.tar.gz"):
        with tarfile.open(out / archive) as tar:
            tar.extractall(tmp_path, filter="data")
    probes = list_images(tmp_path, "facescrub", "test")
    assert probes["identity"].value_counts().sort_index().to_dict() == {
        "Synth_Scrub_0001": 2, "Synth_Scrub_0002": 2}
    distractors = list_images(tmp_path, "megaface", "test")
    # 5 photos dealt over 3 people, the first ones taking one more; a folder per person
    assert distractors["identity"].value_counts().sort_index().to_dict() == {
        "000/0000001": 2, "000/0000002": 2, "000/0000003": 1}
    for layout, rows in (("facescrub", probes), ("megaface", distractors)):
        points = dataset_landmarks(tmp_path, layout, rows["path"])
        assert points.shape == (len(rows), 5, 2) and np.isfinite(points).all()


def test_every_part_draws_its_people_from_its_own_stream() -> None:
    # MegaFace's distractors and probes must be people of no other part: each part's identity
    # stream is its own, so person 0 of one part is not person 0 of another.
    from facerepro.data.synth.streams import _PART_CODE

    assert sorted(_PART_CODE) == sorted(synth.PARTS)
    assert len(set(_PART_CODE.values())) == len(_PART_CODE)
    widths = {part: synth.make_identity(0, part, 0, "x", 0.7).face_w for part in synth.PARTS}
    assert len(set(widths.values())) == len(widths)


def test_pairs_file_has_lfws_structure_and_points_at_real_images(tmp_path: Path) -> None:
    synth.write_part("lfw", tmp_path, tiny())
    lines = (tmp_path / "pairs.txt").read_text().split("\n")
    assert lines[-1] == "" and lines[0] == "2\t4"
    rows = [line.split("\t") for line in lines[1:-1]]
    assert len(rows) == 2 * 2 * 4
    fold_names = []
    for fold in range(2):
        block = rows[fold * 8:(fold + 1) * 8]
        same, diff = block[:4], block[4:]
        assert all(len(r) == 3 and int(r[1]) < int(r[2]) for r in same)
        assert all(len(r) == 4 and r[0] < r[2] for r in diff)
        images = [(r[0], r[1]) for r in same] + [(r[0], r[2]) for r in same]
        images += [(r[0], r[1]) for r in diff] + [(r[2], r[3]) for r in diff]
        for name, k in images:
            assert int(k) >= 1
            assert (tmp_path / "lfw" / name / f"{name}_{int(k):04d}.jpg").is_file()
        fold_names.append({name for name, _ in images})
    assert not fold_names[0] & fold_names[1], "folds must be identity-disjoint"
    image = cv2.imread(str(next((tmp_path / "lfw").glob("*/*_0001.jpg"))))
    assert image.shape == (250, 250, 3)
    landmarks = (tmp_path / "lfw_landmarks.txt").read_text().splitlines()
    assert len(landmarks) - 1 == len(list((tmp_path / "lfw").glob("*/*.jpg")))
    assert all(len(line.split()) == 11 for line in landmarks[1:])


def test_too_few_multi_image_identities_for_the_same_pairs_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="pairs_per_fold"):
        synth.lfw_layout(tiny(lfw={"identities": 40, "folds": 2, "pairs_per_fold": 500}))


def test_overlap_puts_lfw_people_from_pairs_into_casia(tmp_path: Path) -> None:
    cfg = tiny(casia={**TINY["casia"], "overlap": 2})
    synth.write_part("casia", tmp_path, cfg)
    names = [line.split() for line in
             (tmp_path / "CASIA-WebFace" / "names.txt").read_text().splitlines()]
    layout = synth.lfw_layout(cfg)
    in_pairs = [layout.names[i] for i in layout.identities_in_pairs()]
    assert [n for _, n in names[:2]] == in_pairs[:2]
    assert all(n.startswith("Synth_Casia_") for _, n in names[2:])
    assert [i for i, _ in names] == [f"{k:07d}" for k in range(1, 5)]
    assert not {n for n, _, _ in synth.casia_identities(tiny())} & set(layout.names)


def test_celeba_files_follow_celebas_formats(mirror: tuple[Path, dict[str, str]]) -> None:
    out, _ = mirror
    attrs = (out / "list_attr_celeba.txt").read_text().splitlines()
    assert attrs[0] == "12" and attrs[1].split() == list(synth.ATTRIBUTES)
    rows = [line.split() for line in attrs[2:]]
    assert [r[0] for r in rows] == [f"{k:06d}.jpg" for k in range(1, 13)]
    assert all(len(r) == 41 and set(r[1:]) <= {"1", "-1"} for r in rows)
    marks = (out / "list_landmarks_align_celeba.txt").read_text().splitlines()
    assert marks[0] == "12" and marks[1].split()[:2] == ["lefteye_x", "lefteye_y"]
    eyes = np.array([[int(v) for v in line.split()[1:5]] for line in marks[2:]])
    # Aligned crops: the eyes sit near CelebA's mean positions, roughly level.
    assert np.abs(eyes - synth.CELEBA_EYES.ravel()).max() <= 5
    split = [line.split() for line in (out / "list_eval_partition.txt").read_text().splitlines()]
    parts = [int(s) for _, s in split]
    assert parts == sorted(parts) and set(parts) == {0, 1, 2}
    ids = [line.split() for line in (out / "identity_CelebA.txt").read_text().splitlines()]
    person = {name: int(i) for name, i in ids}
    assert set(person.values()) == {1, 2, 3, 4}
    by_split = [{person[n] for n, s in split if int(s) == k} for k in range(3)]
    assert not (by_split[0] & by_split[1] or by_split[0] & by_split[2]
                or by_split[1] & by_split[2]), "CelebA splits are identity-disjoint"


def _lip_or_pupil_mask(image: np.ndarray, rgb: np.ndarray, scale: float) -> np.ndarray:
    distance = np.linalg.norm(image.astype(float) - rgb, axis=2)
    return np.clip(1 - distance / scale, 0, 1)


@pytest.mark.parametrize("pose", [(25, 15, 1.4, (12, -9)), (-25, -20, 1.3, (-15, 10)),
                                  (0, 8, 1.5, (5, 5))])
def test_landmarks_land_on_the_drawn_pupils_and_mouth_corners(pose: tuple) -> None:
    yaw, roll, scale, shift = pose
    person = synth.make_identity(7, "lfw", 1, "p")
    # A light skin and blue iris make the pupil the only near-black thing near the eye; open
    # eyes (no squint) show the whole pupil, so its centroid is the eye centre.
    person = dataclasses.replace(
        person, skin=np.array([220.0, 180, 150]), iris_rgb=np.array([90.0, 120, 160]),
        eye_h=max(person.eye_h, 3.0),
        lip_rgb=np.array([200.0, 100, 90]),
        attributes={**person.attributes, "No_Beard": 1, "Mustache": 0, "Goatee": 0,
                    "5_o_Clock_Shadow": 0})
    shot = synth.sample_shot(person, np.random.default_rng(0), POSE_ONLY)
    shot = dataclasses.replace(
        shot, yaw=yaw, roll=roll, scale=scale, shift=shift, drift=(0.0,) * 8, smile=0.0,
        attributes={**shot.attributes, "Eyeglasses": 0, "Wearing_Lipstick": 0,
                    "Heavy_Makeup": 0, "Wearing_Hat": 0})
    image, landmarks = synth.render(person, shot)
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    pupil = _lip_or_pupil_mask(image, np.array(synth._PUPIL_RGB, float), 40)
    for eye in landmarks[:2]:
        near = (np.abs(xs - eye[0]) <= 4) & (np.abs(ys - eye[1]) <= 4)
        w = pupil * near
        assert w.sum() > 2
        centroid = np.array([(w * xs).sum(), (w * ys).sum()]) / w.sum()
        assert np.linalg.norm(centroid - eye) < 0.75
    lips = _lip_or_pupil_mask(image, person.lip_rgb, 60) > 0.3
    left, right = landmarks[3], landmarks[4]
    axis = (right - left) / np.linalg.norm(right - left)
    mid = (left + right) / 2
    box = (np.abs((xs - mid[0]) * axis[1] - (ys - mid[1]) * axis[0]) < 12)
    along = ((xs - left[0]) * axis[0] + (ys - left[1]) * axis[1])[lips & box]
    assert abs(along.min()) < 2.5
    assert abs(along.max() - np.linalg.norm(right - left)) < 2.5
    # The nose tip lies between the eyes and the mouth.
    assert landmarks[:2, 1].mean() < landmarks[2, 1] < landmarks[3:, 1].mean() + 2 * np.sin(
        np.radians(abs(roll))) * 30


def test_celeba_layout_puts_the_eyes_at_the_aligned_positions() -> None:
    person = synth.make_identity(0, "celeba", 2, "3")
    shot = synth.sample_shot(person, np.random.default_rng(1), synth.Nuisance())
    _, landmarks = synth.render(person, shot, "celeba")
    expected = synth.CELEBA_EYES + np.reshape(shot.eye_jitter, (2, 2))
    np.testing.assert_allclose(landmarks[:2], expected, atol=1e-9)


def _shot(person: synth.Identity, **attributes: int) -> synth.Shot:
    shot = synth.sample_shot(person, np.random.default_rng(5), POSE_ONLY)
    return dataclasses.replace(shot, attributes={**shot.attributes, **attributes})


def _changed_near(a: np.ndarray, b: np.ndarray, point: np.ndarray, radius: int
                  ) -> tuple[int, int]:
    """Pixels that changed clearly, within ``radius`` of ``point`` and elsewhere."""
    changed = np.abs(a.astype(int) - b.astype(int)).sum(axis=2) > 30
    ys, xs = np.mgrid[0:a.shape[0], 0:a.shape[1]]
    near = np.hypot(xs - point[0], ys - point[1]) <= radius
    return int(changed[near].sum()), int(changed[~near].sum())


EYES, MOUTH = [0, 1], [3, 4]


@pytest.mark.parametrize(("attribute", "where", "radius"), [
    ("Eyeglasses", EYES, 75), ("Wearing_Hat", EYES, 110), ("Wearing_Lipstick", MOUTH, 25),
    ("Goatee", MOUTH, 45), ("Mustache", MOUTH, 35), ("Bangs", EYES, 70),
    ("Rosy_Cheeks", EYES, 60), ("Wearing_Necktie", MOUTH, 130), ("Bags_Under_Eyes", EYES, 40),
])
def test_attributes_are_visible_where_they_belong(attribute: str, where: list[int],
                                                   radius: int) -> None:
    person = synth.make_identity(2, "lfw", 5, "p")
    person = dataclasses.replace(person, attributes={**person.attributes, "Bald": 0,
                                                     "No_Beard": 0})
    if attribute in synth.IMAGE_ATTRIBUTES:
        on, landmarks = synth.render(person, _shot(person, **{attribute: 1}))
        off, _ = synth.render(person, _shot(person, **{attribute: 0}))
    else:
        def having(value: int) -> synth.Identity:
            return dataclasses.replace(person,
                                       attributes={**person.attributes, attribute: value})
        on, landmarks = synth.render(having(1), _shot(person))
        off, _ = synth.render(having(0), _shot(person))
    inside, outside = _changed_near(on, off, landmarks[where].mean(0), radius)
    assert inside >= 25, f"{attribute} changes too little near its place"
    assert outside == 0, f"{attribute} changes the image elsewhere"


def test_blurry_smiling_and_open_mouth_are_rendered() -> None:
    person = synth.make_identity(1, "lfw", 3, "p")
    rng = np.random.default_rng(0)
    shots = [synth.sample_shot(person, rng, synth.Nuisance()) for _ in range(300)]
    blurry = [s.blur_sigma for s in shots if s.attributes["Blurry"]]
    sharp = [s.blur_sigma for s in shots if not s.attributes["Blurry"]]
    assert blurry and min(blurry) > max(sharp)
    smiles = [s for s in shots if s.attributes["Smiling"]]
    assert min(s.smile for s in smiles) > max(s.smile for s in shots if s not in smiles)
    opened = [s.mouth_open > 0 for s in shots]
    assert opened == [bool(s.attributes["Mouth_Slightly_Open"]) for s in shots]

    shot = dataclasses.replace(_shot(person), blur_sigma=0.0)
    sharp_image, _ = synth.render(person, shot)
    blurred, _ = synth.render(person, dataclasses.replace(shot, blur_sigma=3.0))
    assert cv2.Laplacian(blurred, cv2.CV_64F).var() < 0.2 * cv2.Laplacian(
        sharp_image, cv2.CV_64F).var()
    # A smile lifts the mouth corners above the lips' centre line.
    _, neutral = synth.render(person, dataclasses.replace(shot, smile=0.0, roll=0.0))
    _, smiling = synth.render(person, dataclasses.replace(shot, smile=1.0, roll=0.0))
    assert (smiling[3:, 1] - neutral[3:, 1]).max() < -2


def test_attribute_rates_match_celebas_imbalance() -> None:
    nuisance = synth.Nuisance()
    counts = np.zeros(len(synth.ATTRIBUTES))
    n = 4000
    for i in range(n):
        person = synth.make_identity(11, "celeba", i, str(i))
        shot = synth.sample_shot(person, np.random.default_rng([11, i]), nuisance)
        counts += np.array(synth.attribute_row(person, shot)) > 0
    rates = dict(zip(synth.ATTRIBUTES, counts / n, strict=True))
    for name, rate in rates.items():
        target = synth.positive_rate(name)
        assert round(abs(target - 0.5) * 100) == synth.IMBALANCE_LEVEL[name]
        assert abs(rate - target) < 0.03, f"{name}: {rate:.3f} vs {target:.3f}"
    assert rates["No_Beard"] > 0.5 and rates["Young"] > 0.5 and rates["Bald"] < 0.05


def test_image_counts_are_long_tailed_like_casia_and_lfw() -> None:
    cfg = synth.SynthConfig()
    casia = synth.casia_image_counts(cfg)
    assert len(casia) == 300
    assert abs(casia.mean() - 43) < 1
    assert 0.36 <= (casia <= 20).mean() <= 0.42
    assert casia.min() >= 2 and casia.max() <= 300
    lfw = synth.lfw_image_counts(cfg)
    assert len(lfw) == 1200
    assert 0.27 <= (lfw >= 2).mean() <= 0.31
    assert 2.0 <= lfw.mean() <= 2.6        # LFW: 13,233 / 5,749 = 2.30
    assert (lfw == 2).sum() > (lfw == 3).sum() > (lfw == 4).sum()


def test_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match=r"nuisance\.wobble"):
        synth.SynthConfig.from_dict({"nuisance": {"wobble": 1}})
    with pytest.raises(ValueError, match="'colour'"):
        synth.SynthConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match=r"casia\.identities"):
        synth.SynthConfig.from_dict({"casia": {"identities": "many"}})
    with pytest.raises(ValueError, match="jpeg_quality"):
        synth.SynthConfig.from_dict({"nuisance": {"jpeg_quality_min": 90,
                                                  "jpeg_quality_max": 80}})
    cfg = synth.SynthConfig.from_dict({"seed": 5, "nuisance": {"yaw_deg": 3}})
    assert cfg.seed == 5 and cfg.nuisance.yaw_deg == 3.0 and cfg.casia == synth.CasiaPart()
